"""The training run's ``metrics.jsonl``: one JSON record per line, and the running means behind it.

A ``"train"`` record holds the means of the loss and the pre-clipping gradient norm over the
steps since the previous record (:class:`Window` keeps their sums on the device, so a step does
not wait for the host; only a record converts them). On resume the records logged after the
checkpoint's step are dropped (:meth:`MetricsLog.truncate`), since they will be logged again.

Each record is appended by one ``write``, so a crash can tear only the last line: reading drops
a torn last line with a warning naming the file; a bad line before it is an error naming the
file and the line.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

from torch import Tensor


class MetricsLog:
    """Appends records to ``path``; with ``enabled=False`` (a rank other than 0) it writes nothing."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def append(self, record: dict) -> None:
        """Append one JSON record."""
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def read(self) -> list[tuple[int, str]]:
        """``(step, line)`` of each record (none if disabled or absent); a torn last line is
        dropped with a warning, a bad line before it is a ``ValueError`` naming it."""
        if not self.enabled or not self.path.exists():
            return []
        lines = self.path.read_text(errors="replace").splitlines()
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append((int(json.loads(line)["step"]), line + "\n"))
            except (ValueError, KeyError, TypeError) as err:
                if number < len(lines):
                    raise ValueError(f"{self.path}, line {number}: not a metrics record ({err}); "
                                     f"repair or delete that line") from err
                warnings.warn(f"{self.path}: dropping its torn last line {line[:60]!r} (written "
                              f"when a run was killed)", stacklevel=3)
        return records

    def truncate(self, step: int) -> None:
        """Keep only the records of steps up to ``step``, and no torn line."""
        if self.enabled and self.path.exists():
            self._rewrite([line for s, line in self.read() if s <= step])

    def claim(self, step: int) -> tuple[int, Path] | None:
        """Make the file end at ``step`` for a run starting there: a file with records beyond
        it (a run whose checkpoint is gone) is moved aside, returning ``(its last step, where it
        went)``; otherwise only a torn last line is dropped."""
        records = self.read()
        last = max((s for s, _ in records), default=0)
        if last > step:
            return last, self.move_aside()
        if self.enabled and self.path.exists():
            self._rewrite([line for _, line in records])
        return None

    def _rewrite(self, lines: list[str]) -> None:
        """Replace the file by ``lines``, atomically (temporary file, then rename)."""
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, self.path)

    def move_aside(self) -> Path:
        """Rename the file to the first free ``<stem>.orphaned-<k>.jsonl`` and return that path."""
        k = 1
        while (aside := self.path.with_name(f"{self.path.stem}.orphaned-{k}{self.path.suffix}")).exists():
            k += 1
        os.replace(self.path, aside)
        return aside


class Window:
    """Sums of the per-step loss and gradient norm since the last record, and its start time."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.loss, self.norm, self.count, self.tic = 0.0, 0.0, 0, time.perf_counter()

    def add(self, loss: Tensor, norm: Tensor) -> None:
        """Add one step's (detached) loss and gradient norm; no host synchronisation."""
        self.loss, self.norm, self.count = self.loss + loss, self.norm + norm, self.count + 1

    def summary(self) -> tuple[dict, float]:
        """``({"loss": mean, "grad_norm": mean}, steps per second)``, then :meth:`reset`."""
        rate = self.count / (time.perf_counter() - self.tic)
        means = {"loss": float(self.loss / self.count), "grad_norm": float(self.norm / self.count)}
        self.reset()
        return means, rate
