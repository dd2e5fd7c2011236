"""``simspine bench multiview``: multi-view triangulation on a SimSpine dataset store (paper §4.2, Tab. 3–4).

For every sequence of the chosen subjects (default: the test split, S9 and S11, when the store has
them, else every subject) the 37 SpineTrack keypoints are triangulated with the subject's cameras
from the store (``<S>/calibration``, OpenCV convention, Z-up world) by simspine's robust
triangulation (:func:`simspine.multiview.triangulation.triangulate`, default options) and compared
with the store's ``keypoints37`` (OpenSim ground, Y up; the triangulated points are mapped with
:func:`simspine.frames.zup_to_yup`):

* **Oracle (GT 2D)**: the store's own 2D projections (``keypoints2d``; visibility as confidence):
  what the geometry alone gives. On exact projections it is ~0 mm (the store's calibration is the
  OpenCV refit of Human3.6M's distortion, whose small fit error is all that is left).
* **Detected 2D** (``--pred-2d DIR``): OpenPose JSON per camera as ``simspine detect`` writes it,
  ``DIR/<subject>/<sequence>/pose/<camera>_json/`` (or without ``pose/``; ``<sequence>`` the store
  name ``Directions_1`` or the original ``Directions 1``), frame numbers from 0 on the store's clock.

Tables: Tab. 3 layout (MPJPE, world frame, mm) and Tab. 4 layout (P-MPJPE: per-frame similarity
Procrustes over all 37 keypoints, mm); one row per action and a ``Mean`` row per method (mean over
actions, as the paper); columns lumbar / thoracic / cervical / spine (the 15 spine-centric
keypoints) / body (COCO 17) / all 37 (:func:`simspine.metrics.regions`), plus the share of
keypoint-frames the triangulation left out (not counted in the means). ``--json FILE`` writes the
same figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from simspine.bench.table import format_table

NAME = "multiview"
HELP = "triangulation on a dataset store: oracle (GT 2D) and detected 2D, per action and region (Tab. 3-4)"
DESCRIPTION = __doc__

REGION_COLUMNS = ("lumbar", "thoracic", "cervical", "spine", "body", "all")


def add_arguments(p) -> None:
    from simspine.commands._args import positive_int

    p.add_argument("--dataset", required=True, help="dataset store (.h5) from simspine build-dataset")
    p.add_argument("--pred-2d", default=None, metavar="DIR",
                   help="detections: DIR/<subject>/<sequence>/pose/<camera>_json/ (OpenPose JSON, SpineTrack-37)")
    p.add_argument("--subjects", nargs="+", default=None,
                   help="subjects to evaluate (default: the test split S9 S11 when present, else all)")
    p.add_argument("--actions", nargs="+", default=None, help="only these actions (default: all)")
    p.add_argument("--step", type=positive_int, default=1, help="use every STEP-th frame (default %(default)s)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")


def _detections(root, subject: str, name: str, original: str, cameras, n_frames: int):
    """(uv (C, T, 37, 2), conf (C, T, 37)) of the detections for one sequence, or None if absent."""
    from simspine.dataset.sequence import spine_2d_folders
    from simspine.io.openpose import read_openpose_folder
    from simspine.skeletons import spinetrack37

    folders = spine_2d_folders(root, SimpleNamespace(subject=subject, name=name, original_name=original),
                               [c.name for c in cameras])
    if not folders:
        return None
    K = len(spinetrack37())
    uv = np.full((len(cameras), n_frames, K, 2), np.nan)
    conf = np.zeros((len(cameras), n_frames, K))
    for i, c in enumerate(cameras):
        if c.name in folders:
            uv[i], conf[i] = read_openpose_folder(folders[c.name], K, frames=np.arange(n_frames))
    return uv, conf


def evaluate(dataset, pred_2d=None, subjects=None, actions=None, step: int = 1) -> dict:
    """Triangulate and score (see the module docstring).

    Returns ``{"methods": {method: {"mpjpe": table, "p_mpjpe": table, "missing": {action: share}}},
    "sequences": [...], "frames": n}`` with tables ``{action: {region: mm}}`` from
    :func:`simspine.metrics.breakdown` (``"Mean"``: mean over actions).
    """
    from simspine.dataset.h36m import TEST_SUBJECTS
    from simspine.dataset.store import Store
    from simspine.errors import InputError
    from simspine.frames import zup_to_yup
    from simspine.metrics import breakdown, regions
    from simspine.multiview.triangulation import triangulate

    items: dict[str, list] = {"Oracle (GT 2D)": []}
    if pred_2d is not None:
        if not Path(pred_2d).is_dir():
            raise InputError(pred_2d, "--pred-2d folder not found")
        items["Detected 2D"] = []
    missing: dict[str, dict[str, list]] = {m: {} for m in items}
    used, frames = [], 0
    with Store(dataset) as st:
        subs = subjects or [s for s in st.subjects() if s in TEST_SUBJECTS] or None
        for cams, seq in st.walk(subs, actions, require=("keypoints37", "keypoints2d"), purpose="the benchmark"):
            s, q, action = seq.subject, seq.name, seq.action
            sel = np.arange(0, seq.n_frames, step)
            gt = seq.keypoints37[sel]
            k2 = seq.keypoints2d[:, sel]
            sources = {"Oracle (GT 2D)": (k2[..., :2], k2[..., 2])}
            if pred_2d is not None:
                det = _detections(pred_2d, s, q, str(seq.attrs.get("original_name", q)), cams, seq.n_frames)
                if det is None:
                    raise InputError(pred_2d, f"no detections for {s}/{q} (looked for "
                                              f"{s}/{q}/pose/<camera>_json/)")
                sources["Detected 2D"] = (det[0][:, sel], det[1][:, sel])
            for m, (uv, conf) in sources.items():
                res = triangulate(cams, uv, conf)
                pred = zup_to_yup(res.points)
                items[m].append((action, pred, gt))
                missing[m].setdefault(action, []).append(~np.isfinite(pred).all(-1))
            used.append(f"{s}/{q}")
            frames += len(sel)
    if not used:
        raise InputError(dataset, "no sequence to evaluate (check --subjects / --actions)")
    rs = regions(REGION_COLUMNS)
    out = {"dataset": str(dataset), "sequences": used, "frames": frames, "step": step, "methods": {}}
    for m, it in items.items():
        miss = {a: float(np.concatenate([x.ravel() for x in v]).mean()) for a, v in missing[m].items()}
        miss["Mean"] = float(np.mean(list(miss.values())))
        out["methods"][m] = {"mpjpe": breakdown(it, "mpjpe", rs), "p_mpjpe": breakdown(it, "p_mpjpe", rs),
                             "missing": miss}
    return out


def tables(result: dict) -> dict[str, str]:
    """The Tab. 3 (MPJPE) and Tab. 4 (P-MPJPE) texts of :func:`evaluate`'s result."""
    headers = ["Action", *(f"{r} mm" for r in REGION_COLUMNS), "missing %"]
    out = {}
    for metric, title in (("mpjpe", "Tab. 3 layout: MPJPE (world frame, mm)"),
                          ("p_mpjpe", "Tab. 4 layout: P-MPJPE (per-frame similarity Procrustes, mm)")):
        rows = []
        methods = list(result["methods"])
        for m in methods:
            r = result["methods"][m]
            t = r[metric]
            label = m[m.index("(") + 1:-1] if m.endswith(")") else m
            if m == methods[-1]:  # the last method gets its per-action rows (paper: the detector's)
                rows += [[a, *(t[a][c] for c in REGION_COLUMNS), 100 * r["missing"][a]] for a in t if a != "Mean"]
            rows.append([f"Mean ({label})", *(t["Mean"][c] for c in REGION_COLUMNS), 100 * r["missing"]["Mean"]])
        out[metric] = title + "\n" + format_table(headers, rows, floatfmt=".2f")
    return out


def run(args) -> int:
    from simspine.fileio import write_text_atomic

    result = evaluate(args.dataset, args.pred_2d, args.subjects, args.actions, args.step)
    print(f"{len(result['sequences'])} sequences, {result['frames']} frames (every {args.step}); "
          f"simspine robust triangulation, store calibration")
    for text in tables(result).values():
        print()
        print(text)
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(result, indent=1, default=float) + "\n")
        print(f"\nwrote {args.json}")
    return 0
