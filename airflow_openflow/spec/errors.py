"""Problems found in an OpenFlow document, with where they are and what to do about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. ``json_path`` uses dots and brackets: ``value.modules[2].value.content``."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based, when the source is a JSON/YAML file
    json_path: str = ""
    hint: str | None = None  # what the user should do
    severity: Literal["error", "warning"] = "error"

    def format(self) -> str:
        where = self.file or "<flow>"
        if self.line is not None:
            where += f":{self.line}"
        if self.json_path:
            where += f" at {self.json_path}"
        text = f"{where}: {self.severity}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class FlowDocumentError(ValueError):
    """A document that cannot be turned into a runnable flow. Carries every error found."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        self.warnings = warnings or []
        super().__init__("\n".join(p.format() for p in problems))

    @property
    def file(self) -> str | None:
        return self.problems[0].file if self.problems else None
