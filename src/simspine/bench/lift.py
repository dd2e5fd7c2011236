"""``simspine bench lift``: SimpleBaseline3D lifters on a store's test subjects (paper §4.3, Tab. 5–6).

Scores the given checkpoints (``--checkpoints``, from ``simspine train lift``), or trains the
requested variants first with the same options as ``train lift``, on the test subjects (default
S9 S11) with the 2D each was trained on (``--pred-2d`` for ``det`` ones), next to the mean-pose
predictor. Figures: :mod:`simspine.lift.evaluate`. ``--json FILE`` writes them.

``--peer-onnx FILE``: the spinepose package's published SimSpine lifter (37×2 → 3D ONNX) scored as
a peer on the same frames as the full-body rows (those with all 37 keypoints seen); its input
normalisation and output unit are the ``--peer-*`` options (defaults: spinepose 2.1's
``DefaultPoseLifter`` form, see :mod:`simspine.lift.peer`).
"""

from __future__ import annotations

import json
from pathlib import Path

NAME = "lift"
HELP = "monocular lifting (SimpleBaseline3D, spine-only / full-body) vs the mean pose: Tab. 5-6 layout"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    from simspine.commands.train import add_train_options

    add_train_options(p)
    p.add_argument("--checkpoints", nargs="+", default=None, metavar="PT",
                   help="lifters from simspine train lift (default: train the --variant ones now)")
    p.add_argument("--test-subjects", nargs="+", default=None, help="default: S9 S11 present in the store")
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")
    g = p.add_argument_group("peer", "the spinepose package's SimSpine lifter (ONNX, 37x2 -> 3D) on the same frames")
    g.add_argument("--peer-onnx", default=None, metavar="FILE", help="its ONNX file (nothing is downloaded)")
    g.add_argument("--peer-input", choices=("camera", "pixels"), default="camera",
                   help="input: camera = ((u-cx)/fx, (v-cy)/fy) with the store's intrinsics, as spinepose "
                        "feeds it (default), or raw pixels")
    g.add_argument("--peer-mean", nargs=2, type=float, default=(0.0, 0.0), metavar=("MU", "MV"),
                   help="subtracted from the input (spinepose's default 0 0)")
    g.add_argument("--peer-std", nargs=2, type=float, default=(1.0, 1.0), metavar=("SU", "SV"),
                   help="the input is divided by it (spinepose's default 1 1)")
    g.add_argument("--peer-metres-per-unit", type=float, default=1.0,
                   help="output unit in metres (default %(default)s)")
    g.add_argument("--peer-height", type=float, default=None, metavar="M",
                   help="rescale the output so its median height is M metres (spinepose: 1.84), "
                        "instead of --peer-metres-per-unit")


def run(args) -> int:
    from simspine.commands.train import subjects_of, train_variants
    from simspine.errors import InputError
    from simspine.fileio import write_text_atomic
    from simspine.lift.data import load_samples
    from simspine.lift.evaluate import lifter_mean_pose, score, tables
    from simspine.lift.model import load_checkpoint, predict

    test = subjects_of(args.dataset, args.test_subjects, "test")
    lifters = []  # (variant, source, lifter, origin)
    train_info: dict[str, dict] = {}
    if args.checkpoints:
        for ck in args.checkpoints:
            lifter, _ids, state = load_checkpoint(ck)
            meta = state["meta"]
            lifters.append((meta.get("variant", "full"), meta.get("source", "gt"), lifter, Path(ck).name))
    else:
        for v, (res, s) in train_variants(args).items():
            lifters.append((v, "det" if args.pred_2d else "gt", res.lifter, "trained now"))
            train_info[v] = {"samples": len(s), "seconds": res.seconds, "epochs": res.config.epochs,
                             "batch_size": res.config.batch_size, "device": res.device,
                             "threads": res.threads, "cpu_seconds": res.cpu_seconds}
    rows, figures, cache = {}, {}, {}
    actions: list[str] = []
    for v, src, lifter, origin in lifters:
        if src == "det" and not args.pred_2d:
            raise InputError(origin, "trained on detected 2D: give --pred-2d DIR for the test subjects' detections")
        key = (v, src)
        if key not in cache:
            cache[key] = load_samples(args.dataset, test, v, args.pred_2d if src == "det" else "gt", args.rate_hz)
        s = cache[key]
        if not len(s):
            raise InputError(args.dataset, f"no test samples for {', '.join(test)}")
        actions += [a for a in dict.fromkeys(s.action.tolist()) if a not in actions]
        label = f"{'Spine Only' if v == 'spine' else 'Full-Body'} | {'Det.' if src == 'det' else 'GT'}"
        rows[label] = score(predict(lifter, s.x2d), s)
        figures[label] = {"checkpoint": origin, "samples": len(s), **rows[label]}
    if args.peer_onnx:
        from simspine.lift.peer import PeerOptions, peer_predict, sample_intrinsics

        opts = PeerOptions(args.peer_input, tuple(args.peer_mean), tuple(args.peer_std), args.peer_metres_per_unit,
                           args.peer_height)
        for src in dict.fromkeys(src for _v, src, _l, _o in lifters):
            key = ("full", src)
            if key not in cache:
                cache[key] = load_samples(args.dataset, test, "full", args.pred_2d if src == "det" else "gt",
                                          args.rate_hz)
            s = cache[key]
            label = f"spinepose lifter | {'Det.' if src == 'det' else 'GT'}"
            rows[label] = score(peer_predict(args.peer_onnx, s.x2d, sample_intrinsics(args.dataset, s), opts), s)
            figures[label] = {"onnx": str(args.peer_onnx), "samples": len(s), "options": vars(opts), **rows[label]}
    # the mean-pose predictor: the first lifter's training mean root-relative pose for every frame
    v, src, lifter, _origin = lifters[0]
    s0 = cache[(v, src)]
    rows[f"Mean pose | {'Det.' if src == 'det' else 'GT'}"] = score(lifter_mean_pose(lifter, len(s0)), s0)
    print(f"test subjects {', '.join(test)}; {args.rate_hz:g} Hz; spine-15 keypoints scored")
    for v, t in train_info.items():
        print(f"training {v}: {t['samples']} samples x {t['epochs']} epochs in {t['seconds']:.1f} s on {t['device']} "
              f"(batch {t['batch_size']}"
              + (f", {t['threads']} thread(s), {t['cpu_seconds']:.1f} CPU-s)" if t["device"] == "cpu" else ")"))
    if args.peer_onnx:
        print(f"spinepose lifter {args.peer_onnx}: on the full-body rows' frames (all 37 keypoints seen); "
              f"input {args.peer_input}, mean {tuple(args.peer_mean)}, std {tuple(args.peer_std)}, output "
              + (f"scaled to a {args.peer_height:g} m median height" if args.peer_height
                 else f"x {args.peer_metres_per_unit:g} m per unit"))
    for text in tables(rows, actions).values():
        print()
        print(text)
    if args.json:
        out = {"test_subjects": test, "rate_hz": args.rate_hz, "rows": figures, "training": train_info,
               "mean_pose": {k: v for k, v in rows.items() if k.startswith("Mean pose")}}
        write_text_atomic(Path(args.json), json.dumps(out, indent=1, default=float) + "\n")
        print(f"\nwrote {args.json}")
    return 0
