"""``DAG.test``'s scheduling loop woken as soon as the executor has news (checked on Airflow 3.3.2).

It lives in compat/ because it relies on how ``DAG.test`` waits: ``time.sleep(1)`` called from the
method itself (``import time`` inside it). Public replacement: a ``DAG.test`` that waits for its
executor's events instead of a fixed second.

``DAG.test(use_executor=True)`` sleeps 1 s whenever no task instance is ready to be sent (tasks
running in the workers, deferred ones, approvals awaited), then looks again. A task that ends just
after the loop fell asleep leaves its successors waiting for the rest of that second: half a
second per step on average, a good part of a short step's cost. While ``woken_by`` is entered, a
``time.sleep`` called by ``DAG.test`` itself (no other caller, in no other frame or thread) ends as
soon as ``has_news()`` is true, looked at every ``POLL_S``, and never lasts longer than asked.
Other reasons to look again (the triggerer resumed a task, an approval was answered) are seen at
the end of the second, as before.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

#: How often the loop's sleep looks for news from the executor.
POLL_S = 0.02


def dag_test_code() -> object:
    """The code object of ``DAG.test``: the one caller whose sleeps are shortened."""
    from airflow.sdk import DAG

    return DAG.test.__code__


@contextlib.contextmanager
def woken_by(has_news: Callable[[], bool]) -> Iterator[None]:
    """While entered, ``DAG.test``'s loop sleeps until ``has_news()`` rather than a full second."""
    real_sleep = time.sleep
    caller = dag_test_code()

    def sleep(seconds: float) -> None:
        if sys._getframe(1).f_code is not caller:
            return real_sleep(seconds)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if has_news():
                return None
            real_sleep(min(POLL_S, left))
        return None

    time.sleep = sleep  # type: ignore[assignment]  # takes what DAG.test passes: seconds
    try:
        yield
    finally:
        time.sleep = real_sleep
