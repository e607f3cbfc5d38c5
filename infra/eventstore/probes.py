"""Readiness probes of the event stores that answer within seconds, even when a database does not.

Asking a store that is down waits for its connection pool (half a minute, and
again for each retry), so a probe that simply asked would answer minutes late
and, repeated by every orchestrator's poll, fill the threads the API runs its
commands in. Here each store is asked in a daemon thread of its own, at most
one question per store at a time: a probe waits a bounded time, and a store
that has not answered by then, or is still busy with an earlier question, is
reported down. A thread stuck on a dead database does not hold up the exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any

from commands.base import ContextApplication
from read_api.health import Outages, report

PROBE_SECONDS = 3.0
"""How long a probe waits for the stores; an orchestrator's probe itself gives up after a few seconds."""


class StoreProbe:
    """Asks event stores whether they answer, naming each that does not ("event store: Payments")."""

    def __init__(self, timeout: float = PROBE_SECONDS) -> None:
        self.timeout = timeout
        self._asking: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()  # probes may come from several threads at once
        self._outages = Outages()

    def check(self, applications: Iterable[ContextApplication]) -> dict[str, Any]:
        """The report on these applications' stores; why one is down goes to the log, once per outage."""
        questions = {f"event store: {app.name}": self._ask(app) for app in applications}
        wait(questions.values(), timeout=self.timeout)
        down = []
        for part, question in questions.items():
            if question.done() and question.exception() is None:
                self._outages.answered(part)
                continue
            down.append(part)
            self._outages.failed(part, question.exception() if question.done() else TimeoutError(
                f"no answer within {self.timeout:g} s"))
        return report(down)

    def _ask(self, app: ContextApplication) -> Future[Any]:
        with self._lock:
            asking = self._asking.get(app.name)
            if asking is None or asking.done():
                asking = Future()
                threading.Thread(target=_answer, args=(asking, app.recorder.max_notification_id),
                                 name=f"store-probe-{app.name}", daemon=True).start()
                self._asking[app.name] = asking
            return asking


def _answer(question: Future[Any], ask: Callable[[], Any]) -> None:
    question.set_running_or_notify_cancel()
    try:
        question.set_result(ask())
    except BaseException as error:  # the probe reports it; no one else waits for this thread
        question.set_exception(error)
