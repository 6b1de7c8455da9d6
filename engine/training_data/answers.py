"""How a model's answer is read: JSON, perhaps in one markdown fence.

Training data orders retrieval examples by their answers (the curriculum) and evaluation scores
answers against references: both read an answer the same way, here.
"""

import json
from typing import Any


def parse_answer(answer: str) -> Any | None:
    """The JSON value of `answer`, unwrapping one surrounding markdown fence; None if none."""
    text = answer.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        body = text[3:-3]
        first_line, _, rest = body.partition("\n")
        text = rest if first_line.strip() in ("", "json") else body
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
