"""``simspine train 2d --config FILE``: the argument parser and the thin layer over
:func:`simspine.train.loop.train_2d` (registered by :mod:`simspine.commands.train`)."""

from __future__ import annotations

DESCRIPTION = """Fine-tune a top-down SpineTrack-37 2D keypoint model (SpinePose/RTMPose form: box -> affine crop
-> backbone -> SimCC) on COCO-keypoints datasets mixed per batch, with the SimSpine paper's three-stage
augmentation curriculum (Supplementary A), AdamW and a warm-up + cosine schedule. The TOML config states
every choice (example: simspine/data/train2d_example.toml). Each epoch: evaluation on [data.val] (PCK-AUC,
COCO OKS AP/AR body and spine) and a checkpoint OUT/last.pt; run the same command again to resume after
the last finished epoch. At the end OUT/spinetrack37_<H>x<W>.onnx, which `simspine detect --backend
spinepose --pose-model FILE` runs, and OUT/history.json. Needs pip install -e ".[train]"."""


def add_2d_parser(sub) -> None:
    """Add the ``2d`` subcommand to ``simspine train``'s subparsers."""
    p = sub.add_parser("2d", help="SpineTrack-37 2D keypoint models (SimCC, COCO data, curriculum, ONNX export)",
                       description=DESCRIPTION, allow_abbrev=False)
    p.add_argument("--config", required=True, metavar="FILE", help="TOML training config")
    p.add_argument("--init-onnx", metavar="FILE", default=None,
                   help="start from this SpinePose ONNX (overrides [model] init_onnx; needs "
                        "pip install --no-deps onnx2torch==1.5.15)")
    p.add_argument("--restart", action="store_true",
                   help="start from epoch 1 even if OUT/last.pt exists (default: resume from it)")


def run_2d(args) -> int:
    from simspine.errors import InputError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError(None, 'simspine train 2d needs torch: pip install -e ".[train]"') from None
    from simspine.train.config import load_config
    from simspine.train.loop import train_2d

    cfg = load_config(args.config)
    if args.init_onnx:
        from pathlib import Path

        cfg.model.init_onnx = str(Path(args.init_onnx).resolve())
    res = train_2d(cfg, log=lambda m: print(m, flush=True), restart=args.restart)
    if res.history:
        first, last = res.history[0], res.history[-1]
        line = f"loss {first['loss']:.4f} (epoch 1) -> {last['loss']:.4f} (epoch {last['epoch']})"
        if "auc" in last and res.initial:
            line += f"; AUC {res.initial['auc']:.3f} (before) -> {last['auc']:.3f}"
        print(line)
    print(f"checkpoint {res.checkpoint}" + (f", model {res.onnx}" if res.onnx else ""))
    return 0
