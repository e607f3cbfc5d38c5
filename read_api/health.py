"""Readiness reports that name the parts that are down, and a log that says why, once per outage.

A report is `{"status": "ok"}`, or `{"status": "unavailable", "down": [...]}`
naming each part that did not answer ("broker", "event store: Payments",
"projections"). A process that publishes for other roles may add
`waiting_for`, the roles nobody runs: the status stays ok, since it is ready
and what it sends waits for them.

A driver's message can carry hosts, users and statements, and a probe answers
anyone who asks, so the reason goes only to the log: one WARNING line when a
part stops answering and one INFO line when it answers again, not a traceback
at every probe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("read_api.health")

OK = "ok"
UNAVAILABLE = "unavailable"


def report(down: Iterable[str] = ()) -> dict[str, Any]:
    """The report for these parts down; ok when there are none."""
    parts = list(dict.fromkeys(down))
    return {"status": UNAVAILABLE, "down": parts} if parts else {"status": OK}


def waiting(roles: Iterable[str]) -> dict[str, Any]:
    """The report of a process that is ready and waits for these roles to be started."""
    return {"status": OK, "waiting_for": list(dict.fromkeys(roles))}


def merged(*reports: Mapping[str, Any]) -> dict[str, Any]:
    """One report of several: every part down in any of them, and what else they say."""
    combined: dict[str, Any] = {}
    down: list[str] = []
    for each in reports:
        combined.update({key: value for key, value in each.items() if key not in ("status", "down")})
        down += [str(part) for part in each.get("down", ())]
        if each.get("status") != OK and not each.get("down"):
            down.append("unknown")  # a check of another shape that said it is not ok
    return {**report(down), **combined}


def down_parts(found: Mapping[str, Any]) -> str:
    """The parts a report names as down, for people: "broker, event store: Orders"."""
    return ", ".join(str(part) for part in found.get("down", ())) or "none"


class Outages:
    """The parts found down, so that each outage is logged when it begins and when it ends, once."""

    def __init__(self) -> None:
        self._down: set[str] = set()
        self._lock = threading.Lock()  # stores are probed from worker threads

    def failed(self, part: str, error: BaseException | None = None) -> None:
        with self._lock:
            began = part not in self._down
            self._down.add(part)
        if began:
            log.warning("%s is down: %s", part, _reason(error))

    def answered(self, part: str) -> None:
        with self._lock:
            ended = part in self._down
            self._down.discard(part)
        if ended:
            log.info("%s answers again", part)


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "it did not answer"
    text = " ".join(str(error).split())  # one line, whatever the driver's message spans
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
