"""Test helpers shared by several test files: a fake clock for timing logic (the fast suite reads no wall
clock it would have to trust under load)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeClock:
    """Stands in for the ``time`` module of the code under test (``monkeypatch.setattr(module, "time",
    clock)``): ``perf_counter`` and ``monotonic`` read a clock that moves only when the test says so
    (:meth:`advance`, or a call made by :meth:`taking`), in whole nanoseconds, so a timing rule gives the
    same answer on an idle machine and on one whose cores are all busy."""

    def __init__(self) -> None:
        self.ns = 0

    def perf_counter(self) -> float:
        return self.ns / 1e9

    monotonic = perf_counter

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)

    sleep = advance

    def taking(self, *seconds: float, then: float | None = None, log: list | None = None) -> Callable[[], Any]:
        """A call whose k-th run takes ``seconds[k]`` (then ``then``, default the last of ``seconds``),
        appending each run's duration to ``log``."""
        durations = list(seconds)
        rest = durations[-1] if then is None else then

        def call() -> None:
            took = durations.pop(0) if durations else rest
            if log is not None:
                log.append(took)
            self.advance(took)

        return call
