"""The LocalExecutor ``run_flow`` uses, with a shutdown that cannot hang (checked on Airflow 3.3.2).

It lives in compat/ because it overrides ``LocalExecutor.end`` and reads its internals
(``workers``, ``activity_queue``, ``result_queue``, ``_read_results``). Public replacement: a
fixed ``LocalExecutor.end`` upstream; then ``run_flow`` can use ``LocalExecutor`` itself.

Airflow 3.3's ``LocalExecutor.end()`` sends one stop message per worker it sees alive and then
joins each worker without a timeout; when a worker dies or is reaped in between, another one can
wait for a stop message that never comes, and the caller hangs after the run has finished (seen
in our test suite). Here every worker gets a stop message, joins are bounded, and a worker that
does not stop is terminated (then killed) by its pid. A run that is abandoned before it ends
(``abort``) stops the workers and everything they started at once.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from airflow.executors.local_executor import LocalExecutor

from airflow_openflow.process_trees import stop_process_trees

_JOIN_SECONDS = 30.0
_ABORT_GRACE_SECONDS = 5.0

# Started and not yet ended: what ``abort_all`` stops when a run is abandoned.
_running: weakref.WeakSet[RunnerLocalExecutor] = weakref.WeakSet()


def abort_all() -> None:
    """Stop the workers of every executor of this process that has not ended (see ``abort``)."""
    for executor in list(_running):
        executor.abort()


class RunnerLocalExecutor(LocalExecutor):
    def start(self) -> None:
        super().start()
        _running.add(self)

    def abort(self) -> None:
        """Stop every worker and what it runs (task supervisors, task processes, their
        subprocesses) now, by pid: for a run that is abandoned (``DAG.test`` raised, the caller's
        output closed, a signal). ``DAG.test`` ends its executor only when the run finishes; left
        alone, idle workers wait for work forever and multiprocessing's exit handler joins them."""
        _running.discard(self)
        workers: list[Any] = list(getattr(self, "workers", {}).values())
        stop_process_trees([proc.pid for proc in workers if proc.pid], grace_s=_ABORT_GRACE_SECONDS)
        for proc in workers:
            proc.join(timeout=1)  # reap: they are our children
            with contextlib.suppress(ValueError):
                proc.close()
        self.workers: dict[int, Any] = {}

    def end(self) -> None:
        self.log.debug("Stopping the run_flow LocalExecutor workers")
        workers: list[Any] = list(self.workers.values())
        for _ in workers:
            self.activity_queue.put(None)  # one stop message per worker, alive or not
        for proc in workers:
            proc.join(timeout=_JOIN_SECONDS)
            if proc.is_alive():
                self.log.warning("LocalExecutor worker %s did not stop; terminating it", proc.pid)
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            with contextlib.suppress(ValueError):
                proc.close()
        self.workers = {}
        _running.discard(self)
        self._read_results()
        self.activity_queue.close()
        self.result_queue.close()
