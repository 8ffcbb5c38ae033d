"""Class-conditional MNIST: one row of samples per class, and the lower half of test digits
filled in, from one class-conditional score network.

The grid draws ``--per-class`` samples of each class with classifier-free guidance,
``(1 + w) s(x, t | y) - w s(x, t | ∅)`` at ``w = --guidance`` (``ss.classifier_free_guidance``),
and reports the share the data set's feature classifier assigns to the requested class. The
inpainting keeps the upper half of ``--n-inpaint`` test digits and samples the lower half from
the model's unconditional score ``s(x, t | ∅)`` (``ss.inpaint``, method ``--method``), and
reports the mean squared error of the filled-in pixels beside that of the data's mean image.

The model is ``--checkpoint RUN`` (a run trained with labels, e.g. ``scoresde train --config
configs/mnist_quick.yaml --set model.num_classes=10 --set train.label_dropout=0.1
--set train.steps=1125``, whose recorded evaluation is ``benchmarks/results/mnist_guided_w0.json``),
or one trained here for ``--steps`` on that recipe (about 15 CPU-minutes for 1,125 steps);
``--quick`` trains a tiny model on 8x8 digits for a few steps and only checks the plumbing.
Writes ``conditional_mnist.png`` and ``conditional_mnist.json``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from _common import parse, parser, pyplot, save_figure, save_json

import scoresde as ss
from scoresde.build import DEFAULT_MNIST, build_trainer, load_config, load_data, load_trained
from scoresde.conditional.masks import named_mask
from scoresde.plotting import show_images

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LABELS = ["model.num_classes=10", "train.label_dropout=0.1"]
TINY = ["model.channels=8", "model.channel_mult=[1, 2]", "model.attn_resolutions=[4]",
        "train.batch_size=16"]


def arguments():
    p = parser(__doc__)
    p.add_argument("--checkpoint", type=Path, help="a class-conditional run directory")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_MNIST, help="directory of the MNIST .gz files")
    p.add_argument("--steps", type=int, help="training steps without --checkpoint (default 1125; quick 4)")
    p.add_argument("--per-class", type=int, default=8, help="samples per class in the grid")
    p.add_argument("--guidance", type=float, default=0.0, help="guidance scale w (0: the conditional model)")
    p.add_argument("--n-inpaint", type=int, default=8, help="test digits to fill in")
    p.add_argument("--method", default="replacement", choices=ss.INPAINT_METHODS)
    p.add_argument("--sampler", default="dpm++2m")
    p.add_argument("--sample-steps", type=int, default=20)
    return parse(p)


def model_and_data(args):
    """The EMA model of ``--checkpoint``, or of a run trained here, and its data set."""
    if args.checkpoint is not None:
        cfg = load_config(args.checkpoint / "config.yaml")
        return load_trained(args.checkpoint, cfg, args.device), load_data(cfg.data)
    steps = args.steps or (4 if args.quick else 1125)
    base = CONFIGS / ("digits_vp.yaml" if args.quick else "mnist_quick.yaml")
    sets = [*LABELS, f"train.steps={steps}", f"train.lr_decay_steps={steps}",
            f"train.warmup={min(100, steps // 10)}", f"train.seed={args.seed}"]
    if args.quick:
        sets += TINY
    else:
        sets.append(f"data.root={args.data_dir}")
    cfg = load_config(base, sets)
    data = load_data(cfg.data)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, run_dir, args.device, data, progress=not args.quick)
        trainer.fit(steps)
    return trainer.ema.eval().requires_grad_(False), data


def class_grid(model, args, shape) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``per_class`` guided samples of each class, row ``k`` of class ``k``; and their NFE."""
    labels = torch.arange(model.num_classes, device=args.device).repeat_interleave(args.per_class)
    score_fn = ss.classifier_free_guidance(model, labels, args.guidance)
    gen = torch.Generator(args.device).manual_seed(args.seed + 1)
    with torch.no_grad():
        x, info = ss.sample(score_fn, model.sde, (len(labels), *shape), sampler=args.sampler,
                            steps=args.sample_steps, generator=gen, device=args.device)
    return x.clamp(-1, 1).cpu(), labels.cpu(), info.nfe


def lower_halves(model, data, args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The first ``n_inpaint`` test digits with their lower half sampled: (masked input, filled in,
    original, NFE)."""
    original = data.test[: args.n_inpaint].to(args.device)
    mask = named_mask("lower-half", data.shape).to(args.device)
    gen = torch.Generator(args.device).manual_seed(args.seed + 2)
    with torch.no_grad():
        x, info = ss.inpaint(model, model.sde, original, mask, sampler=args.sampler,
                             steps=args.sample_steps, method=args.method, generator=gen)
    masked = torch.where(mask, original, torch.zeros(()))
    return masked.cpu(), x.clamp(-1, 1).cpu(), original.cpu(), info.nfe


def figure(grid: torch.Tensor, rows: int, triplet: tuple, title: str, out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5), gridspec_kw={"width_ratios": [1, 1]})
    show_images(axes[0], grid, rows, len(grid) // rows)
    axes[0].set_title("one row per class (0 at the top)")
    show_images(axes[1], torch.cat(triplet), 3, len(triplet[0]))
    axes[1].set_title("rows: upper half kept, lower half filled in, original")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, out, "conditional_mnist")


def main() -> None:
    args = arguments()
    if not args.quick and args.checkpoint is None and not args.data_dir.is_dir():
        raise SystemExit(f"--data-dir {args.data_dir} is not a directory holding the MNIST .gz files")
    tic = time.perf_counter()
    model, data = model_and_data(args)
    if model.num_classes == 0:
        raise SystemExit(f"--checkpoint {args.checkpoint} was trained without labels (model.num_classes = 0)")
    x, labels, grid_nfe = class_grid(model, args, data.shape)
    masked, filled, original, inpaint_nfe = lower_halves(model, data, args)
    classifier, _ = ss.load_or_train_classifier(data.train, data.train_labels, test_images=data.test,
                                                test_labels=data.test_labels, progress=False)
    judge = ss.ImageJudge(classifier, data.test, data.train)
    _, probs = judge.outputs(x, "samples")
    unknown = ~named_mask("lower-half", data.shape).expand_as(original)
    record = {
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
        "guidance": args.guidance, "per_class": args.per_class, "sampler": args.sampler,
        "sample_steps": args.sample_steps, "grid_nfe": grid_nfe,
        "class_match": float((probs.argmax(1) == labels).double().mean()),
        "method": args.method, "inpaint_nfe": inpaint_nfe,
        "mse_unknown": float(((filled - original)[unknown] ** 2).mean()),
        "mse_mean_image": float(((data.train.mean(0) - original)[unknown] ** 2).mean()),
        "seconds": time.perf_counter() - tic,
    }
    title = (f"w = {args.guidance:g}, {args.sampler} {args.sample_steps} steps: "
             f"{record['class_match']:.0%} in the requested class; inpainting MSE "
             f"{record['mse_unknown']:.3f} (mean image {record['mse_mean_image']:.3f})")
    figure(x, model.num_classes, (masked, filled, original), title, args.out)
    save_json(args.out, "conditional_mnist", record)


if __name__ == "__main__":
    main()
