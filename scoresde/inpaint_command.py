"""``scoresde inpaint``: fill in the masked part of held-out images with a trained image model
(:func:`scoresde.inpaint`) and draw (masked input, sample, original) side by side.

    scoresde inpaint --checkpoint runs/mnist_quick --mask lower-half --n 16

Writes ``<run>/inpaint/<mask>_<method>.png`` (three grids: the known pixels with the unknown
ones grey, the filled-in images, the originals), ``.pt`` (the filled-in images, model range) and
``.json`` (method, sampler, NFE and the mean squared error of the unknown pixels against the
originals, beside that of the data's mean image as a reference).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from scoresde.arguments import add_common, checkpoint_run_dir, positive, resolve, sampler_steps
from scoresde.atomic import write_json
from scoresde.build import load_data, load_trained
from scoresde.conditional import INPAINT_METHODS, inpaint
from scoresde.conditional.masks import MASKS, named_mask
from scoresde.plotting import pyplot, show_images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--checkpoint", metavar="RUN", help="run directory (same as --run-dir)")
    parser.add_argument("--mask", default="lower-half", help=f"what to fill in: {', '.join(MASKS)}")
    parser.add_argument("--n", type=int, default=16, help="test images to inpaint (default 16)")
    parser.add_argument("--method", default="replacement", choices=INPAINT_METHODS)
    parser.add_argument("--sampler", help="sampler (default: sample.sampler; smc: its own)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: sample.steps)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image choice, mask and noise")
    parser.add_argument("--out", type=Path, help="output PNG (default <run>/inpaint/<mask>_<method>.png)")


def main(args: argparse.Namespace) -> int:
    checkpoint_run_dir(args)
    n = positive(args, "n", 16)
    cfg, run_dir = resolve(args)
    data = load_data(cfg.data)
    if data.num_levels is None:
        raise ValueError(f"inpaint fills in images; data.name {cfg.data.name!r} is not an image set")
    gen = torch.Generator().manual_seed(args.seed)
    mask = named_mask(args.mask, data.shape, gen)
    if n > len(data.test):
        raise ValueError(f"--n {n} exceeds the {len(data.test)} test images")
    original = data.test[torch.randperm(len(data.test), generator=gen)[:n]].to(args.device)
    model = load_trained(run_dir, cfg, args.device, cfg.sample.ema)
    sampler, steps = ((args.sampler, args.steps) if args.method == "smc"
                      else sampler_steps(args, cfg.sample))
    noise = torch.Generator(args.device).manual_seed(args.seed + 1)
    tic = time.perf_counter()
    with torch.no_grad():
        x, info = inpaint(model, model.sde, original, mask, method=args.method, sampler=sampler,
                          steps=steps, generator=noise)
    seconds = time.perf_counter() - tic
    x = x.clamp(-1, 1).cpu()
    original, mask = original.cpu(), mask.cpu().expand_as(original)
    name = f"{args.mask.replace(':', '')}_{args.method}"
    out = args.out or run_dir / "inpaint" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"mask": args.mask, "method": info.method, "sampler": info.sampler, "steps": len(info.ts) - 1,
              "nfe": info.nfe, "n": n, "seconds": seconds, **unknown_errors(x, original, mask, data.train)}
    torch.save(x, out.with_suffix(".pt"))
    draw(original, x, mask, out, f"{cfg.name}: {args.mask}, {info.method} ({info.sampler}, NFE {info.nfe})")
    write_json(out.with_suffix(".json"), record)
    print(f"{n} images inpainted -> {out} (NFE {info.nfe}, {seconds:.1f} s); unknown-pixel MSE "
          f"{record['mse_unknown']:.4f} (the data's mean image: {record['mse_mean_image']:.4f})")
    return 0


def unknown_errors(x: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, train: torch.Tensor) -> dict:
    """Mean squared error over the unknown pixels (model range) of the samples and, as a reference
    that knows nothing of the known part, of the training set's mean image."""
    unknown = ~mask
    mean_image = train.mean(0).expand_as(original)
    return {"mse_unknown": float(((x - original)[unknown] ** 2).mean()),
            "mse_mean_image": float(((mean_image - original)[unknown] ** 2).mean())}


def draw(original: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, out: Path, title: str) -> None:
    """Three grids side by side: the masked input (unknown pixels grey), the sample, the original."""
    plt = pyplot()
    rows = max(1, math.isqrt(len(x)))
    masked = torch.where(mask, original, torch.zeros(()))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    for ax, images, label in zip(axes, (masked, x, original), ("masked input", "inpainted", "original"),
                                 strict=True):
        show_images(ax, images, rows)
        ax.set_title(label)
    fig.suptitle(title)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
