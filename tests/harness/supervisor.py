"""Children that are restarted when they exit, as kubelet restarts a pod's container.

virt-api and virt-controller exit on purpose when a CDI CRD appears, and virt-controller when it
loses its Lease; a supervised child comes back with the same arguments, appending to the same log,
so a failing test can read everything it printed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tests.harness.processes import stop_process

RESTART_DELAY_S = 0.5


class Supervised:
    """One child process, restarted after it exits until `stop()`."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.args, self.log, self.env = name, args, log, env
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Supervised:
        self._spawn()
        self._thread = threading.Thread(
            target=self._watch, name=f"supervise-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def _spawn(self) -> None:
        from tests.harness.controlplane import set_parent_death_signal

        with self._lock, self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                preexec_fn=set_parent_death_signal,
            )

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                with self.log.open("ab") as out:
                    out.write(
                        f"\n--- {self.name} exited with {proc.returncode}; restarting\n".encode()
                    )
                time.sleep(RESTART_DELAY_S)
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self._spawn()
            self._stopping.wait(0.2)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(2)
        with self._lock:
            if self._proc is not None:
                stop_process(self._proc, timeout=3)

    def tail(self, lines: int = 40) -> str:
        """The end of the log, for a failing test's message."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
