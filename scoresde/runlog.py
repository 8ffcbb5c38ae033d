"""The training run's ``metrics.jsonl``: one JSON record per line, and the running means behind it.

A ``"train"`` record holds the means of the loss and the pre-clipping gradient norm over the
steps since the previous record (:class:`Window` keeps their sums on the device, so a step does
not wait for the host; only a record converts them). On resume the records logged after the
checkpoint's step are dropped (:meth:`MetricsLog.truncate`), since they will be logged again.
"""

from __future__ import annotations

import json
import os
import time
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

    def truncate(self, step: int) -> None:
        """Drop the records of steps after ``step`` (atomically: temporary file, then rename)."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.path)


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
