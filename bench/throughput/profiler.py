"""Optional profiling: py-spy recording the measured processes while a run is measured (--profile)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


class Profiler:
    """py-spy recording the given processes while a run is measured."""

    def __init__(self, directory: Path | None, label: str, *, gil: bool = True) -> None:
        self.directory, self.label, self.gil = directory, label, gil
        self.spies: list[subprocess.Popen[bytes]] = []

    def attach(self, pids: dict[str, int]) -> None:
        if self.directory is None:
            return
        spy = Path(sys.executable).parent / "py-spy"
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            output = self.directory / f"{self.label}-{name}.txt"
            self.spies.append(subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
                 "--nonblocking", *(["--gil"] if self.gil else []), "-o", str(output)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        time.sleep(1.0)  # py-spy takes a moment to attach

    def detach(self) -> None:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        self.spies.clear()
