"""Child processes that are started, waited for and stopped by process id."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 30.0
_POLL_S = 0.05


class ProcessError(RuntimeError):
    """A child process failed to start, to become ready, or died."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@dataclass
class ManagedProcess:
    """A child process with its log file; ``stop`` sends SIGTERM, then SIGKILL after a grace."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        if self.popen is None:
            msg = f"{self.name} is not started"
            raise ProcessError(msg)
        return self.popen.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(  # noqa: S603 - argv is built by the project, no shell
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                # Own process group, so Ctrl-C in the terminal reaches only the supervisor, which
                # then stops every child in order.
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            msg = f"cannot start {self.name} ({self.argv[0]}): {exc}"
            raise ProcessError(msg) from exc
        return self

    def start_and_wait_port(self, host: str, port: int) -> ManagedProcess:
        """Start, then wait until it listens; a child that never gets ready is stopped again."""
        self.start()
        try:
            self.wait_port(host, port)
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_port(self, host: str, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until the process accepts TCP connections on ``port`` or fail with its log tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.returncode()
                msg = f"{self.name} exited with {code} before listening: {self.log_tail()}"
                raise ProcessError(msg)
            if port_open(host, port):
                return
            time.sleep(_POLL_S)
        where = f"{host}:{port}"
        msg = f"{self.name} did not listen on {where} within {timeout_s:.0f}s: {self.log_tail()}"
        raise ProcessError(msg)

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal(self, signum: int) -> None:
        if self.alive():
            # It may exit between the check and the kill; then there is nothing left to signal.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """Stop by pid: SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns the exit code."""
        if self.popen is not None and self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
