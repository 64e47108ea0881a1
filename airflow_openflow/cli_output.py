"""What ``airflow-openflow run`` does with its standard streams: Airflow's logs redirected to a
file while the run runs, and a reader that goes away (``| head``) ending the run promptly
(exit 141), wherever it is noticed."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any


@contextmanager
def logs_to(log_path: Path | None) -> Iterator[Any]:
    """While the run runs, file descriptors 1 and 2 (Airflow's logs, this process's and the forked
    executor workers') go to ``log_path``; yields a stream on the real stderr for the step view.
    The real stdout and stderr stay watched by ``OutputGuard`` (a reader going away still ends
    the run). ``None``: nothing is redirected."""
    if log_path is None:
        yield sys.stderr
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    real_stderr = open(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        for fd in (1, 2):
            os.dup2(target, fd)
        WATCHED_FDS.extend(saved)
        yield real_stderr
    finally:
        os.close(target)
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):
                stream.flush()
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)
        for original in saved:
            WATCHED_FDS.remove(original)
            os.close(original)
        with suppress(OSError, ValueError):
            real_stderr.close()


class OutputClosed(BaseException):
    """The reader of stdout or stderr went away. A BaseException: raised into whatever the main
    thread is doing (Airflow's scheduling loop catches ``Exception`` in places)."""


class OutputGuard:
    """While ``run`` runs, a closed stdout or stderr ends it promptly, wherever it is noticed:

    * a write of this process to the closed pipe (Airflow's own logging included: structlog does
      not swallow ``BrokenPipeError`` the way the logging module does) raises SIGPIPE, which
      Python ignores by default; here it is handled, in the main thread, by raising
      :class:`OutputClosed` once;
    * a thread polls fds 1 and 2 for POLLERR (a pipe without reader) and signals the main thread,
      so a run that writes nothing for a while still ends (task processes, which write their logs
      to the same pipe, only break themselves).

    The closed descriptors are pointed at ``/dev/null`` so that later writes (the runner's own
    shutdown, the interpreter's final flush) neither fail nor raise again. SIGPIPE on other pipes
    (the executor's queues to a worker that died) does not count: only a broken fd 1 or 2 does.
    Forked executor workers inherit the handler; in them it does nothing (EPIPE as usual).
    """

    fired = False  # OutputClosed was raised (it may have been caught on the way)

    def __enter__(self) -> OutputGuard:
        self._owner = os.getpid()
        self._armed = True
        self._main = threading.main_thread().ident
        self._previous = signal.signal(signal.SIGPIPE, self._on_sigpipe)
        self._stop = threading.Event()
        if closed_outputs() is not None:  # poll() exists on this platform
            threading.Thread(target=self._watch, name="openflow-output-watch", daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._armed = False
        self._stop.set()
        signal.signal(signal.SIGPIPE, self._previous)

    def _on_sigpipe(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._owner:
            return
        if silence_closed_output() and self._armed:
            self._armed = False
            self.fired = True
            raise OutputClosed

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            if self._armed and closed_outputs():
                if self._main is not None:
                    signal.pthread_kill(self._main, signal.SIGPIPE)
                return


def ensure_standard_streams() -> None:
    """A standard descriptor closed by the caller (``2>&-``) becomes /dev/null: else the next file
    opened takes its number (the API server's log would receive our stderr), and Python leaves
    ``sys.stderr`` None, on which Airflow's logging fails at its first message."""
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, flags)  # the lowest free number: usually fd itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's stdout
    if sys.stderr is None:
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's stderr


#: The descriptors of the real stdout and stderr: 1 and 2, and their copies while ``logs_to``
#: sends 1 and 2 to a file.
WATCHED_FDS: list[int] = [1, 2]


def closed_outputs() -> list[int] | None:
    """Which of fds 1 and 2 (and their saved copies) are pipes (or sockets) whose reader went away;
    None without poll()."""
    import select

    if not hasattr(select, "poll"):
        return None
    poller = select.poll()
    for fd in list(WATCHED_FDS):
        poller.register(fd, select.POLLOUT)
    return [fd for fd, events in poller.poll(0) if events & select.POLLERR]


def silence_closed_output() -> list[int]:
    """Point the closed ones of fds 1 and 2 (and their saved copies) at /dev/null; return them."""
    closed = closed_outputs() or []
    for fd in closed:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    return closed
