"""Progress hooks that the training and evaluation loops report to.

The ML CLI passes rich progress bars (ml.console.BarReporter); library callers and benchmarks
pass nothing and get `Quiet`. Imports nothing of the project.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """What a long loop tells its caller: a phase starts, steps finish, a line to show."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, n: int = 1, **info: float) -> None: ...

    def log(self, message: str) -> None: ...


class Quiet(Reporter):
    """Reports nowhere: the default when a caller passes no reporter. Subclass it to watch
    one hook."""

    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, **info: float) -> None:
        pass

    def log(self, message: str) -> None:
        pass
