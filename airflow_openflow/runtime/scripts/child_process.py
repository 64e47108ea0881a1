"""What every script runner that starts a child process shares (bash, deno, bun): copying its
output to the task log while keeping the last lines for errors, and stopping its whole process
group on a timeout or when the task is stopped; on Linux the child also dies with the task process
when that is killed outright (SIGKILL: nothing of ours runs then).

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Final

from airflow_openflow.runtime.errors import StepError

__all__ = [
    "KILL_GRACE_S",
    "Output",
    "join_readers",
    "kill_group",
    "run_child",
    "signal_group",
    "start_child",
    "timeout_error",
]

TAIL_LINES: Final = 5
KILL_GRACE_S: Final = 2.0  # SIGTERM first, then SIGKILL
DRAIN_GRACE_S: Final = 2.0  # background children may keep the pipes open after the child exits


class Output:
    """Copies the child's lines to the task log and keeps what the result and errors need."""

    def __init__(self) -> None:
        self.last_line: str | None = None  # last non-empty stdout line, trimmed
        # One tail per stream: the two pipes are read by two threads, so their interleaving is
        # not the script's order; the error shows the last lines of stdout, then of stderr.
        self.tails: dict[bool, collections.deque[str]] = {
            True: collections.deque(maxlen=TAIL_LINES),
            False: collections.deque(maxlen=TAIL_LINES),
        }
        self._lock = threading.Lock()

    def pump(self, pipe: IO[bytes] | None, sink: IO[str], is_stdout: bool) -> None:
        if pipe is None:
            return
        with pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                with self._lock:
                    try:
                        sink.write(line if line.endswith("\n") else line + "\n")
                        sink.flush()
                    except (OSError, ValueError):
                        pass  # a closed log stream must not stop the capture
                    text = line.rstrip("\r\n")
                    self.tails[is_stdout].append(text)
                    if is_stdout and text.strip():
                        self.last_line = text.strip()

    def tail_text(self) -> str:
        with self._lock:
            return "\n".join([*self.tails[True], *self.tails[False]])

    def start_readers(
        self, proc: subprocess.Popen[bytes], stdout: IO[str], stderr: IO[str]
    ) -> list[threading.Thread]:
        readers = [
            threading.Thread(target=self.pump, args=(proc.stdout, stdout, True), daemon=True),
            threading.Thread(target=self.pump, args=(proc.stderr, stderr, False), daemon=True),
        ]
        for reader in readers:
            reader.start()
        return readers


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the child's process group (it was started with ``start_new_session=True``)."""
    if proc.poll() is not None:
        signal_group(proc, signal.SIGKILL)  # the child is gone; its background children may not be
        return
    signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    signal_group(proc, signal.SIGKILL)
    proc.wait()


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def join_readers(readers: list[threading.Thread], proc: subprocess.Popen[bytes]) -> None:
    """Wait for the output to be drained; if background jobs of the script hold the pipes open
    after the child exited, stop them (as Windmill ends the job's whole sandbox)."""
    for reader in readers:
        reader.join(timeout=DRAIN_GRACE_S)
    if any(reader.is_alive() for reader in readers):
        signal_group(proc, signal.SIGKILL)
        for reader in readers:
            reader.join()


_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>


def _dies_with_parent() -> Callable[[], None] | None:
    """Linux: the function the child runs before exec to be SIGKILLed when the thread that starts
    it dies. A task process killed with SIGKILL (the OOM killer; a worker whose supervisor died
    is not even told) runs none of our clean-up, and the script, in a session of its own, would go
    on beside the step's retry. The callers wait for the child in the thread that started it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    option, sig = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL)

    def preexec() -> None:  # in the forked child, before exec: a system call or two, no imports
        prctl(option, sig)
        if os.getppid() != parent:  # the parent died before the call
            os._exit(128 + signal.SIGKILL)

    return preexec


def start_child(
    argv: Sequence[str], *, workdir: os.PathLike[str] | str, env: Mapping[str, str], step_id: str, what: str
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a process group of its own (so a timeout kills its children too), stdin
    closed, output piped, killed if the process starting it dies (Linux); ``what`` names it in the
    error when it cannot start."""
    try:
        return subprocess.Popen(
            list(argv),
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_dies_with_parent(),
        )
    except (OSError, ValueError) as exc:
        raise StepError("ExecutionErr", f"could not start {what}: {exc}", step_id=step_id) from exc


def timeout_error(timeout_s: float | None, output: Output, step_id: str) -> StepError:
    return StepError(
        "ExecutionErr",
        f"Timeout: the script ran longer than its {timeout_s or 0:g} s limit and was killed; "
        f"last lines of output:\n{output.tail_text()}",
        step_id=step_id,
    )


def run_child(
    argv: Sequence[str],
    *,
    workdir: os.PathLike[str] | str,
    env: Mapping[str, str],
    step_id: str,
    what: str,
    timeout_s: float | None,
    wait_s: float | None = None,
) -> tuple[int, Output]:
    """Run ``argv`` to its end, its output copied to the task log; return (exit code, output).
    After ``wait_s`` (default ``timeout_s``) its group is killed and the step's timeout error
    raised; a stopped task (any ``BaseException``) kills it too."""
    proc = start_child(argv, workdir=workdir, env=env, step_id=step_id, what=what)
    output = Output()
    readers = output.start_readers(proc, sys.stdout, sys.stderr)
    try:
        try:
            code = proc.wait(timeout=timeout_s if wait_s is None else wait_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            join_readers(readers, proc)
            raise timeout_error(timeout_s, output, step_id) from None
    except BaseException:
        # The task is being stopped (or the timeout above): leave no script running behind us.
        kill_group(proc)
        raise
    join_readers(readers, proc)
    return code, output
