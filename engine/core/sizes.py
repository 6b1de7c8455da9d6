"""Byte counts as an operator reads them: `512 B`, `1.5 KiB`, `3.4 MiB`, `6.2 GiB`."""


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    if size < 1024**3:
        return f"{size / 1024**2:.1f} MiB"
    return f"{size / 1024**3:.1f} GiB"
