"""Where the shared OpenFlow conformance corpus is: ``../shared/conformance`` next to the project
(as laid out for developers and CI), or ``OPENFLOW_CONFORMANCE_DIR`` (the ``cases`` folder)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES_DIR = Path(os.environ.get("OPENFLOW_CONFORMANCE_DIR", REPO.parent / "shared" / "conformance" / "cases"))


def case_files(folder: str = "cases") -> list[Path]:
    """The case files of ``cases`` (or a sibling folder such as ``cases-typescript``), sorted;
    empty when the corpus is missing (callers fail on that)."""
    directory = CASES_DIR if folder == "cases" else CASES_DIR.parent / folder
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def missing_message(folder: str = "cases") -> str:
    directory = CASES_DIR if folder == "cases" else CASES_DIR.parent / folder
    return f"conformance corpus not found at {directory}; set OPENFLOW_CONFORMANCE_DIR"
