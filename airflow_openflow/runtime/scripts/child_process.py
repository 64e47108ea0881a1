"""What every script runner that starts a child process shares (bash, deno, bun): copying its
output to the task log while keeping the last lines for errors, and stopping its whole process
group on a timeout or when the task is stopped.

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
from typing import IO, Final

__all__ = ["KILL_GRACE_S", "Output", "join_readers", "kill_group", "signal_group"]

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
