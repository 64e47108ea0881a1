"""How values appear in task logs."""

from __future__ import annotations

import json
from typing import Any


def json_preview(value: Any, limit: int = 2000) -> str:
    """``value`` as JSON for a log line, cut after ``limit`` characters (the full length said)."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
