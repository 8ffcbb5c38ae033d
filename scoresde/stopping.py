"""Stopping a training run cleanly on Ctrl-C (``SIGINT``) or ``SIGTERM``.

While :class:`StopSignals` is entered (main thread only: elsewhere Python cannot install
handlers), the first signal is only recorded, so the loop can finish its step, write a
checkpoint and raise :class:`TrainingStopped`; a second signal raises :class:`StoppedAtOnce`
at once, except inside :meth:`StopSignals.deferred` (a checkpoint being written), where it is
only reported: the write completes, and the stop the first signal planned follows. The previous
handlers are restored on exit.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """``Trainer.fit`` stopped by a signal at a step boundary, after writing a checkpoint."""


class StoppedAtOnce(KeyboardInterrupt):
    """``Trainer.fit`` stopped by a second signal, possibly mid-step; its message says which
    step the checkpoint kept is at."""


class StopSignals:
    """Records the first stop signal in :attr:`received` (reset on entry); ``plan()`` says what
    happens next."""

    def __init__(self, plan: Callable[[], str]):
        self.plan, self.received = plan, None
        self._previous: dict = {}
        self._deferring = 0

    def __enter__(self) -> StopSignals:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a second signal does not interrupt (it is reported, not raised)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            print(f"\n{name}: {self.plan()} (send it again to stop at once)", file=sys.stderr,
                  flush=True)
        elif self._deferring:
            print(f"\n{name} again: a checkpoint is being written; it completes first",
                  file=sys.stderr, flush=True)
        else:
            raise StoppedAtOnce(f"second signal ({name}): stopped at once")
