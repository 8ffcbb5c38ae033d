"""Checkpoint files: the format, the atomic write, the checks on load, and the random states.

A checkpoint is one ``torch.save`` dict with the keys :data:`CHECKPOINT_KEYS`: the format tag,
the run's fingerprint (its configuration), the step, the model, the EMA, the optimizer, the data
loader's state and the random states (:func:`rng_state`). It is written atomically (temporary
file in the same directory, fsync, ``os.replace``), so a reader finds the previous checkpoint or
the new one, never half of one; on load every check runs before anything is copied.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

CHECKPOINT_FORMAT = "scoresde-checkpoint-v1"
CHECKPOINT_KEYS = ("format", "fingerprint", "step", "model", "ema", "optimizer", "loader", "rng")


def write_checkpoint(state: dict, path: Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file beside it, fsync, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a checkpoint file; ``ValueError`` if truncated, corrupt or foreign."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint {path} is truncated or corrupt: {err}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks keys {missing}")
    return state


def check_compatible(state: dict, path: Path, fingerprint: dict, modules: dict[str, nn.Module]) -> None:
    """Refuse ``state`` (read from ``path``) if it was written under another ``fingerprint`` or
    if the parameters of one of ``modules`` (checkpoint key -> module) differ in name or shape."""
    differing = fingerprint_diff(state["fingerprint"], fingerprint)
    if differing:
        raise ValueError(
            f"checkpoint {path} was written by another configuration; differing entries: {differing}"
        )
    for key, module in modules.items():
        check_state(state[key], module, f"{path}: {key}")


def check_state(saved: dict, module: nn.Module, what: str) -> None:
    """``ValueError`` unless ``saved`` has exactly ``module``'s parameter names and shapes."""
    expected = module.state_dict()
    if saved.keys() != expected.keys():
        raise ValueError(
            f"{what} parameters differ: missing {sorted(expected.keys() - saved.keys())}, "
            f"unexpected {sorted(saved.keys() - expected.keys())}"
        )
    bad = [k for k in expected if saved[k].shape != expected[k].shape]
    if bad:
        raise ValueError(f"{what} parameter shapes differ for {bad}")


def fingerprint_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The entries of the current fingerprint ``b`` where the checkpoint's ``a`` differs, as
    ``"key: a (checkpoint) != b (now)"``. Entries only in ``a`` are ones the configuration no
    longer fingerprints (e.g. ``data.root``, dropped later) and are ignored."""
    out = []
    for key in sorted(b):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += fingerprint_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} (checkpoint) != {vb!r} (now)")
    return out


def rng_state(generator: torch.Generator) -> dict:
    """torch's global CPU (and CUDA) random states and ``generator``'s (the loss noise)."""
    rng = {"torch": torch.get_rng_state(), "noise": generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(generator: torch.Generator, rng: dict) -> None:
    """Set the states :func:`rng_state` returned (CUDA's only if saved and available)."""
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["noise"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
