"""Stopping a training run cleanly on Ctrl-C (``SIGINT``) or ``SIGTERM``.

While :class:`StopSignals` is entered (main thread only: elsewhere Python cannot install
handlers), the first signal is only recorded, so the loop can finish its step, write a
checkpoint and raise :class:`TrainingStopped`; a second signal raises ``KeyboardInterrupt`` at
once. The previous handlers are restored on exit.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """``Trainer.fit`` stopped by a signal at a step boundary, after writing a checkpoint."""


class StopSignals:
    """Records the first stop signal in :attr:`received` (reset on entry); ``plan()`` says what
    happens next."""

    def __init__(self, plan: Callable[[], str]):
        self.plan, self.received = plan, None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise KeyboardInterrupt(f"second signal ({name}): stopped mid-step; the last "
                                    f"checkpoint written stays")
        self.received = name
        print(f"\n{name}: {self.plan()} (send it again to stop at once)", file=sys.stderr, flush=True)
