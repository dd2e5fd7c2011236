"""``simspine bench lift``: SimpleBaseline3D lifters on a store's test subjects (paper §4.3, Tab. 5–6).

Scores the given checkpoints (``--checkpoints``, from ``simspine train lift``), or trains the
requested variants first with the same options as ``train lift``, on the test subjects (default
S9 S11) with the 2D each was trained on (``--pred-2d`` for ``det`` ones), next to the mean-pose
predictor. Figures: :mod:`simspine.lift.evaluate`. ``--json FILE`` writes them.
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


def run(args) -> int:
    from simspine.commands.train import subjects_of, train_variants
    from simspine.errors import InputError
    from simspine.fileio import write_text_atomic
    from simspine.lift.data import load_samples
    from simspine.lift.evaluate import lifter_mean_pose, score, tables
    from simspine.lift.model import load_checkpoint, predict

    test = subjects_of(args.dataset, args.test_subjects, "test")
    lifters = []  # (variant, source, lifter, origin)
    if args.checkpoints:
        for ck in args.checkpoints:
            lifter, _ids, state = load_checkpoint(ck)
            meta = state["meta"]
            lifters.append((meta.get("variant", "full"), meta.get("source", "gt"), lifter, Path(ck).name))
    else:
        for v, (res, _s) in train_variants(args).items():
            lifters.append((v, "det" if args.pred_2d else "gt", res.lifter, "trained now"))
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
    # the mean-pose predictor: the first lifter's training mean root-relative pose for every frame
    v, src, lifter, _origin = lifters[0]
    s0 = cache[(v, src)]
    rows[f"Mean pose | {'Det.' if src == 'det' else 'GT'}"] = score(lifter_mean_pose(lifter, len(s0)), s0)
    print(f"test subjects {', '.join(test)}; {args.rate_hz:g} Hz; spine-15 keypoints scored")
    for text in tables(rows, actions).values():
        print()
        print(text)
    if args.json:
        out = {"test_subjects": test, "rate_hz": args.rate_hz, "rows": figures,
               "mean_pose": {k: v for k, v in rows.items() if k.startswith("Mean pose")}}
        write_text_atomic(Path(args.json), json.dumps(out, indent=1, default=float) + "\n")
        print(f"\nwrote {args.json}")
    return 0
