"""Small builders of OpenFlow documents shared by the tests."""

from __future__ import annotations

from typing import Any


def py(step_id: str, body: str, **transforms: str) -> dict[str, Any]:
    """A python3 step whose ``main`` takes the given arguments, each a JavaScript expression."""
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": f"def main({', '.join(transforms)}):\n"
            + "".join(f"    {x}\n" for x in body.splitlines()),
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
        },
    }


def script(step_id: str, content: str, **transforms: str) -> dict[str, Any]:
    """A python3 step with a whole script (imports, decorators, ``main``)."""
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": content,
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
        },
    }


def flow(*modules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": "test flow", "value": {"modules": list(modules)}, **extra}


def counting(path: str, then: str) -> str:
    """A step body that appends an ``x`` to the file at ``path`` (how often it ran), then ``then``."""
    return (
        f"import pathlib\np = pathlib.Path({path!r})\n"
        f"p.write_text((p.read_text() if p.exists() else '') + 'x')\n{then}"
    )
