"""Checkpoint files: the format, the atomic write, the checks on load, and the random states.

A checkpoint is one ``torch.save`` dict with the keys :data:`CHECKPOINT_KEYS`: the format tag,
the run's fingerprint (its configuration), the step, the model, the EMA, the optimizer, the data
loader's state and the random states (:func:`rng_state`), plus ``"checksum"``: the sha256 of
all of it (:func:`state_checksum`), verified on load, so that flipped bytes are an error naming
the file rather than silently wrong weights. A file written before checksums existed loads
with a warning. It is written atomically (temporary file in the same directory, fsync,
``os.replace``, fsync of the directory), so a reader finds the previous checkpoint or the new
one, never half of one, with the permissions of any new file (``0666`` less the umask); on load
every check runs before anything is copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import secrets
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

CHECKPOINT_FORMAT = "scoresde-checkpoint-v1"
CHECKPOINT_KEYS = ("format", "fingerprint", "step", "model", "ema", "optimizer", "loader", "rng")


def write_checkpoint(state: dict, path: Path) -> Path:
    """Write ``state`` and its :func:`state_checksum` to ``path`` atomically: a temporary file
    beside it (created ``0666`` less the umask), fsync, rename, fsync of the directory."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            torch.save({**state, "checksum": state_checksum(state)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the file system allows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def state_checksum(state: dict) -> str:
    """sha256 over every leaf of ``state`` in key order: its key path, then for a tensor its dtype,
    shape and bytes, for anything else its ``repr``."""
    digest = hashlib.sha256()
    for key, leaf in _leaves(state, ""):
        digest.update(key.encode())
        if isinstance(leaf, Tensor):
            leaf = leaf.detach().cpu().contiguous()
            digest.update(f"{leaf.dtype}{tuple(leaf.shape)}".encode())
            digest.update(leaf.reshape(-1).view(torch.uint8).numpy())
        else:
            digest.update(repr(leaf).encode())
    return digest.hexdigest()


def _leaves(obj: object, key: str) -> Iterator[tuple[str, object]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{key}/{k!r}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{key}/{i}")
    else:
        yield key, obj


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
    verify_checksum(state, path)
    return state


def verify_checksum(state: dict, path: Path) -> None:
    """Remove ``state["checksum"]`` and check it against the rest; ``ValueError`` naming ``path``
    if they differ, a warning if there is none (a file written before checksums existed)."""
    stored = state.pop("checksum", None)
    if stored is None:
        warnings.warn(f"checkpoint {path} has no checksum (written by an older scoresde); "
                      f"loading it unverified", stacklevel=3)
        return
    actual = state_checksum(state)
    if actual != stored:
        raise ValueError(f"checkpoint {path} is corrupt: the sha256 of its contents is "
                         f"{actual[:16]}…, not the {stored[:16]}… stored when it was written")


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
