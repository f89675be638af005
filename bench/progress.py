"""Progress lines: what is running, and about how long is left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def human(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Prints one line per step with an estimate of the time left.

    The estimate is the planned time of the remaining steps (their durations
    plus a per-step overhead), where the overhead is learnt from the steps done
    so far: measured wall time minus planned run time.
    """

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 overhead: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.start = clock()
        self.overhead = overhead
        self._overheads: list[float] = []

    def elapsed(self) -> float:
        return self.clock() - self.start

    def say(self, text: str) -> None:
        elapsed = int(self.elapsed())
        print(f"bench [{elapsed // 60:d}:{elapsed % 60:02d}] {text}", file=self.stream,
              flush=True)

    def step(self, index: int, total: int, label: str, planned: float,
             remaining_planned: float, remaining_steps: int, extra: float = 0.0) -> None:
        """Announce step ``index`` of ``total``; ``remaining_planned`` includes this step."""
        left = remaining_planned + remaining_steps * self.estimated_overhead() + extra
        self.say(f"[{index}/{total}] {label} ({human(planned)}) — about {human(left)} left")

    def record(self, planned: float, actual: float) -> None:
        self._overheads.append(max(0.0, actual - planned))

    def estimated_overhead(self) -> float:
        if not self._overheads:
            return self.overhead
        return sum(self._overheads) / len(self._overheads)
