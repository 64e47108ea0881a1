"""The ``wmill`` module a python3 step sees while it runs (Windmill's SDK, as far as it exists here).

Only ``get_resume_urls`` so far, in a step with ``suspend``; the rest of the SDK comes with issue 5.
It is put in ``sys.modules`` for the step's run only, then the previous entry (if any) is restored.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def wmill_for_step(get_resume_urls: Callable[..., dict[str, str]]) -> Iterator[None]:
    module = types.ModuleType("wmill")
    module.__doc__ = "airflow-openflow's stand-in for Windmill's SDK"
    module.get_resume_urls = get_resume_urls  # type: ignore[attr-defined]

    def missing(name: str) -> Any:
        raise AttributeError(
            f"wmill.{name} is not available in airflow-openflow yet (only get_resume_urls, in a step "
            "with suspend)"
        )

    module.__getattr__ = missing  # type: ignore[method-assign]
    previous = sys.modules.get("wmill")
    sys.modules["wmill"] = module
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop("wmill", None)
        else:
            sys.modules["wmill"] = previous
