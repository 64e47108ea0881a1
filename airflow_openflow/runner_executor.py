"""The LocalExecutor ``run_flow`` uses, with a shutdown that cannot hang.

Airflow 3.3's ``LocalExecutor.end()`` sends one stop message per worker it sees alive and then
joins each worker without a timeout; when a worker dies or is reaped in between, another one can
wait for a stop message that never comes, and the caller hangs after the run has finished (seen
in our test suite). Here every worker gets a stop message, joins are bounded, and a worker that
does not stop is terminated (then killed) by its pid.
"""

from __future__ import annotations

import contextlib
from typing import Any

from airflow.executors.local_executor import LocalExecutor

_JOIN_SECONDS = 30.0


class RunnerLocalExecutor(LocalExecutor):
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
        self.workers: dict[int, Any] = {}
        self._read_results()
        self.activity_queue.close()
        self.result_queue.close()
