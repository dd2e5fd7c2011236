"""``simspine train lift``: SimpleBaseline3D lifters on a dataset store (paper §4.3).

Trains the spine-only (15 keypoints) and/or full-body (37) variant on the train subjects' 2D
(the store's exact projections, or ``--pred-2d DIR`` detections) → root-centred camera-frame 3D,
frames sampled at ``--rate-hz``; writes ``OUT/lift_<variant>_<gt|det>.pt`` (weights, normaliser,
settings, losses) and, unless ``--no-onnx``, ``.onnx`` (checked against torch with onnxruntime).
Needs ``pip install -e ".[lift]"``. CPU by default; ``--device auto`` or ``cuda`` uses a GPU.
"""

from __future__ import annotations

from pathlib import Path

NAME = "train"
HELP = ("train models: 'train lift' (SimpleBaseline3D 2D->3D lifters on a dataset store), "
        "'train 2d' (SpineTrack-37 2D keypoint models on COCO-keypoints data, --config FILE)")
DESCRIPTION = __doc__


def add_train_options(p, variant_default: str = "both") -> None:
    """Options shared by ``train lift`` and ``bench lift``."""
    from simspine.commands._args import positive_float, positive_int

    p.add_argument("--dataset", required=True, help="dataset store (.h5) from simspine build-dataset")
    p.add_argument("--pred-2d", default=None, metavar="DIR",
                   help="detected 2D, DIR/<subject>/<sequence>/pose/<camera>_json/ (default: the store's GT 2D)")
    p.add_argument("--variant", choices=("spine", "full", "both"), default=variant_default,
                   help="spine-only (15 keypoints), full-body (37) or both (default %(default)s)")
    p.add_argument("--train-subjects", nargs="+", default=None,
                   help="default: the train split (S1 S5 S6 S7 S8) present in the store")
    p.add_argument("--rate-hz", type=positive_float, default=1.0,
                   help="frames sampled per second of each sequence (paper: 1; default %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--hidden", type=positive_int, default=1024, help="linear width (default %(default)s)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto (a GPU when torch sees one)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: one per core not already busy, from the load average)")
    p.add_argument("--seed", type=int, default=0)


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="what", metavar="MODEL", required=True)
    lp = sub.add_parser("lift", help="SimpleBaseline3D lifters (spine-only / full-body)", description=__doc__,
                        allow_abbrev=False)
    add_train_options(lp)
    lp.add_argument("--out", required=True, help="folder for the checkpoints (.pt) and ONNX files")
    lp.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    from simspine.train.cli import add_2d_parser

    add_2d_parser(sub)


def subjects_of(dataset, given, split: str) -> list[str]:
    from simspine.dataset.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS
    from simspine.dataset.store import Store
    from simspine.errors import InputError

    if given:
        return list(given)
    with Store(dataset) as st:
        have = st.subjects()
    want = TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS
    subs = [s for s in have if s in want]
    if not subs:
        raise InputError(dataset, f"no {split} subject ({' '.join(want)}) in the store (has {' '.join(have)}): "
                                  f"give --{split}-subjects")
    return subs


def config_from_args(args):
    from simspine.lift.model import TrainConfig

    return TrainConfig(hidden=args.hidden, dropout=args.dropout, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed, device=args.device, threads=args.threads,
                       lr_step_epochs=max(1, args.epochs // 2))


def train_variants(args, log=print) -> dict[str, tuple]:
    """Train the requested variants; returns ``{variant: (TrainResult, samples)}``."""
    from simspine.lift.data import load_samples
    from simspine.lift.model import pick_device, train

    pick_device(args.device)  # a missing GPU is said before the samples are read
    subs = subjects_of(args.dataset, args.train_subjects, "train")
    source = args.pred_2d or "gt"
    out = {}
    for v in (("spine", "full") if args.variant == "both" else (args.variant,)):
        s = load_samples(args.dataset, subs, v, source, args.rate_hz)
        log(f"{v}: {len(s)} samples ({', '.join(subs)}; {'detected' if args.pred_2d else 'GT'} 2D, "
            f"{args.rate_hz:g} Hz; {s.dropped} views with unseen keypoints left out)")
        res = train(s, config_from_args(args), log=lambda m, v=v: log(f"  {v} {m}"))
        where = (f"{res.device}, {res.threads} thread(s), {res.cpu_seconds:.1f} CPU-s" if res.device == "cpu"
                 else res.device)
        log(f"  {v}: {res.seconds:.1f} s on {where}, loss {res.losses[0]:.4f} -> {res.losses[-1]:.4f}")
        out[v] = (res, s)
    return out


def run(args) -> int:
    if args.what == "2d":
        from simspine.train.cli import run_2d

        return run_2d(args)
    from simspine.lift.model import export_onnx, onnx_check, save_checkpoint

    tag = "det" if args.pred_2d else "gt"
    out = Path(args.out)
    for v, (res, s) in train_variants(args).items():
        ck = save_checkpoint(out / f"lift_{v}_{tag}.pt", res, {"variant": v, "source": tag, "dataset": args.dataset,
                                                                 "subjects": sorted(set(s.subject.tolist())),
                                                                 "rate_hz": args.rate_hz})
        print(f"wrote {ck}")
        if not args.no_onnx:
            path = export_onnx(res.lifter, out / f"lift_{v}_{tag}.onnx", len(res.keypoints))
            diff = onnx_check(res.lifter, path, s.x2d[:256])
            print(f"wrote {path} (onnxruntime vs torch: max {diff * 1000:.2g} mm)")
    return 0
