"""The feature classifier trained once per data set and recipe, cached on disk under a fingerprint.

The key is ``sha256`` over the training images' and labels' dtype, shape and bytes, the
architecture (its constructor arguments and :data:`~scoresde.metrics.classifier.ARCH_VERSION`),
the seed and the full training recipe (defaults filled in). The file ``<key>.pt`` holds the key,
the state dict and a JSON-able info dict; it is written atomically (a temporary file in the same
directory, then ``os.replace``). A file that cannot be read, holds another key or does not fit the
architecture is retrained and overwritten, never used.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scoresde.metrics.classifier import (
    ARCH_VERSION,
    FeatureClassifier,
    accuracy,
    resolve_device,
    timed_training,
    train_classifier,
)

DEFAULT_CACHE = Path("~/.cache/scoresde/classifiers")
ARCH_KEYS = ("feature_dim", "width")
NOT_RECIPE = ("seed", "device", "progress")


def default_cache_dir() -> Path:
    """``$SCORESDE_CACHE``, else ``~/.cache/scoresde/classifiers``."""
    return Path(os.environ.get("SCORESDE_CACHE") or DEFAULT_CACHE).expanduser()


def full_recipe(recipe: dict) -> dict:
    """The keyword arguments of :func:`train_classifier` other than seed / device / progress,
    defaults filled in; an unknown name raises ``TypeError`` naming it."""
    params = {name: p.default for name, p in inspect.signature(train_classifier).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in NOT_RECIPE}
    unknown = sorted(set(recipe) - set(params))
    if unknown:
        raise TypeError(f"unknown training recipe argument(s) {unknown}; known: {sorted(params)}")
    return {**params, **recipe}


def data_digest(*arrays: Tensor | np.ndarray) -> str:
    """``sha256`` over each array's dtype, shape and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(torch.as_tensor(a).cpu().numpy())
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def architecture(train_images: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                 recipe: dict) -> dict:
    """Constructor arguments of the classifier :func:`train_classifier` builds for this data."""
    shape = torch.as_tensor(train_images).shape
    channels = 1 if len(shape) == 3 else shape[1]
    return {"in_channels": int(channels), "image_size": int(shape[-1]),
            "num_classes": int(torch.as_tensor(train_labels).max()) + 1,
            **{k: recipe[k] for k in ARCH_KEYS}}


def cache_key(data_sha: str, arch: dict, seed: int, recipe: dict) -> str:
    """``sha256`` of the data digest, architecture, version, seed and recipe (canonical JSON)."""
    blob = json.dumps({"data": data_sha, "architecture": arch, "version": ARCH_VERSION, "seed": seed,
                       "recipe": recipe}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_or_train_classifier(
    train_images: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    *,
    test_images: Tensor | np.ndarray | None = None,
    test_labels: Tensor | np.ndarray | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    **recipe,
) -> tuple[FeatureClassifier, dict]:
    """The cached classifier for this data, seed and recipe (``**recipe``: :func:`train_classifier`'s
    knobs), trained and cached when missing, stale or corrupt; returns ``(classifier, info)``.

    ``info`` (JSON-able): ``key``, ``architecture``, ``version``, ``seed``, ``recipe``, ``train_n``,
    ``train_seconds``, ``train_cpu_seconds``, ``test_accuracy`` / ``test_n`` when test data is given
    (recomputed if it is not the test set stored with the file), ``path`` and ``cached`` (loaded).
    """
    if (test_images is None) != (test_labels is None):
        raise ValueError("give test_images and test_labels together, or neither")
    recipe = full_recipe(recipe)
    arch = architecture(train_images, train_labels, recipe)
    key = cache_key(data_digest(train_images, train_labels), arch, seed, recipe)
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = path / f"{key}.pt"
    device = resolve_device(device)
    net, info = _load(path, key, device) if path.exists() else (None, None)
    cached = net is not None
    if not cached:
        net, timing = timed_training(train_images, train_labels, seed=seed, device=device,
                                     progress=progress, **recipe)
        info = {"key": key, "architecture": arch, "version": ARCH_VERSION, "seed": seed,
                "recipe": recipe, "train_n": len(train_labels), **timing, "torch": str(torch.__version__),
                "device": str(device)}
    if test_images is not None:
        test_sha = data_digest(test_images, test_labels)
        if info.get("test_sha256") != test_sha:
            info.update(test_accuracy=accuracy(net, test_images, test_labels), test_n=len(test_labels),
                        test_sha256=test_sha)
    info = json.loads(json.dumps(info))  # plain JSON types only: what weights_only loading admits
    if not cached:
        _save(path, key, net, info)
    return net, {**info, "path": str(path), "cached": cached}


def _load(path: Path, key: str, device: torch.device) -> tuple[FeatureClassifier | None, dict | None]:
    """The classifier and info stored at ``path`` if it is readable and holds ``key``; else a warning
    and ``(None, None)``."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        if payload["key"] != key or payload["info"]["key"] != key:
            raise ValueError(f"it holds key {payload['key']}, not {key}")
        info = payload["info"]
        net = FeatureClassifier(**info["architecture"]).to(device)
        net.load_state_dict(payload["state_dict"])
    except Exception as err:  # any unreadable or mismatched file is retrained, never used
        warnings.warn(f"retraining the feature classifier: cache file {path} is unusable ({err!r})",
                      stacklevel=3)
        return None, None
    return net.eval(), info


def _save(path: Path, key: str, net: FeatureClassifier, info: dict) -> None:
    """Write ``{key, state_dict, info}`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"key": key, "state_dict": net.state_dict(), "info": info}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
