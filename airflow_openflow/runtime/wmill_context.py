"""Where a python3 step's ``import wmill`` comes from while it runs: the SDK module
(``runtime/wmill_sdk.py``), answering for the step's session (``runtime/wmill_session.py``).
Kept apart from both so that neither imports the other back."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from airflow_openflow.runtime import wmill_sdk
from airflow_openflow.runtime.wmill_session import WmillSession, activate, deactivate


def install() -> None:
    """``wmill`` in ``sys.modules`` is ``runtime/wmill_sdk.py`` from now on in this process (a
    task's own process: Airflow runs each task instance in a process of its own)."""
    if sys.modules.get("wmill") is not wmill_sdk:
        sys.modules["wmill"] = wmill_sdk


@contextmanager
def wmill_session(
    session: WmillSession, *, environment: Mapping[str, str] | None = None
) -> Iterator[WmillSession]:
    """Make ``import wmill`` give the SDK module, whose functions answer for ``session``.

    ``environment``: Windmill's contextual variables (``WM_JOB_ID``...), set for the step's run in
    the task's main thread only (the environment is process-wide)."""
    install()
    token = activate(session)
    own_env = threading.current_thread() is threading.main_thread() and environment
    saved = {name: os.environ.get(name) for name in environment or {}} if own_env else {}
    if own_env and environment:
        os.environ.update(environment)
    try:
        yield session
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        deactivate(session, token)
