"""What a DataTable shows, read back for assertions: cells cut short by their column."""

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable


def cut_cells(table: DataTable) -> list[str]:
    """Each cell wider than its auto-sized column, so drawn cut short (`'scope-v'` for
    `'scope-v1'`), as `row/column: text`; empty when every cell shows whole."""
    cut = []
    for row_key in table.rows:
        for column in table.ordered_columns:
            if not column.auto_width:
                continue
            value = table.get_cell(row_key, column.key)
            text = value.plain if isinstance(value, Text) else str(value)
            if cell_len(text) > column.content_width:
                cut.append(f"{row_key.value}/{column.key.value}: {text}")
    return cut
