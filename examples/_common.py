"""Shared by the examples: the command line (``--quick``, ``--out``, ``--device``, ``--seed``),
JSON output and a headless matplotlib."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from scoresde.plotting import pyplot

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the first paragraph of the example's docstring."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a seconds-long run (used by the tests)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for PNG and JSON")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (the models here are small: more threads add overhead)")
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line and apply ``--threads``."""
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    return args


def save_json(out: Path, name: str, record: dict) -> Path:
    """Write ``record`` to ``out/name.json`` and print it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path


def save_figure(fig, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    print(f"wrote {path}")
    return path
