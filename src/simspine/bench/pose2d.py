"""``simspine bench 2d``: 2D keypoint predictions scored against COCO ground truth (paper §4.1, Tab. 2).

Ground truth: a COCO keypoints JSON in SpineTrack-37 order (``simspine dataset export --format coco``
writes one per split). Predictions, one or more (one table row each):

* a COCO *results* JSON: a list of ``{"image_id", "keypoints": [u, v, score] * 37, "score"}``
  (the form COCO evaluators read; ``category_id`` is ignored, one category), or
* a folder of OpenPose JSON as ``simspine detect`` writes it, found per ground-truth image from its
  ``subject``, ``sequence``, ``camera`` and ``frame`` (the COCO export writes them; otherwise camera
  and frame come from the ``file_name`` ``.../<stem>.<camera>/<frame>.jpg``):
  ``PRED/<subject>/<sequence>/pose/<camera>_json/``, ``PRED/<subject>/<sequence>/<camera>_json/``,
  ``PRED/pose/<camera>_json/`` or ``PRED/<camera>_json/``; the file is the one whose last number is
  the frame. Every person of the file is a prediction, scored by its mean keypoint confidence.

Figures (all from :mod:`simspine.metrics`, nothing re-implemented):

* COCO OKS AP, AP50, AP75, AR for the ``body`` (ids 0-16) and ``spine`` subsets with the
  SpineTrack-37 sigmas (pycocotools' ``COCOeval``); Tab. 2's APB / ARB / APS / ARS.
* PCK at 0.1 and 0.2 and PCK-AUC over thresholds 0-0.5, distances divided by the shorter side of
  the ground-truth person box; over all 37 keypoints (Tab. 2's AUC) and over the spine subset. Each
  ground-truth person is scored against the prediction of its image closest to it (median
  normalised distance over its labelled keypoints); a person without one counts every keypoint
  wrong. Only labelled keypoints (v > 0) count.

``simspine.metrics.coco_oks`` treats each ground-truth person as its own image, so predictions of an
image holding several people are assigned to their closest person first (the SimSpine export has
one person per image, where this is exactly COCO's evaluation); predictions for images without any
ground-truth person are left out. ``--json FILE`` writes every figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME = "2d"
HELP = "2D keypoints vs COCO ground truth: OKS AP/AR (body, spine), PCK and PCK-AUC (Tab. 2 layout)"
DESCRIPTION = __doc__

K = 37


@dataclass
class GroundTruth:
    """COCO ground truth: ``kp`` (N, 37, 3) u, v, v-flag px; ``boxes`` (N, 4) x, y, w, h;
    ``image_row`` (N,) index into ``images``; ``images`` the file's image dicts."""

    kp: np.ndarray
    boxes: np.ndarray
    image_row: np.ndarray
    images: list[dict]
    path: str


@dataclass
class Predictions:
    """``kp`` (M, 37, 2) px (NaN: not predicted), ``scores`` (M,), ``image_row`` (M,) index into the
    ground truth's ``images``; ``label`` names the source."""

    kp: np.ndarray
    scores: np.ndarray
    image_row: np.ndarray
    label: str


def _read_json(path):
    from simspine.errors import InputError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None


def _keypoints(values, where, path) -> np.ndarray:
    from simspine.errors import InputError

    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(path, f"{where}: keypoints hold non-numeric values") from None
    if arr.shape != (3 * K,):
        raise InputError(path, f"{where}: {arr.size} keypoint values, expected 3 x {K} = {3 * K} "
                               "(u, v, v-flag/score per SpineTrack-37 keypoint)")
    return arr.reshape(K, 3)


def load_ground_truth(path) -> GroundTruth:
    """Read a COCO keypoints JSON (SpineTrack-37); crowd and keypoint-less annotations are left out."""
    from simspine.errors import InputError

    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("annotations"), list):
        raise InputError(path, "not a COCO keypoints file (needs 'images' and 'annotations' lists)")
    images = data["images"]
    row = {img.get("id"): i for i, img in enumerate(images) if isinstance(img, dict)}
    kps, boxes, rows = [], [], []
    for j, a in enumerate(data["annotations"]):
        where = f"annotations[{j}]"
        if not isinstance(a, dict) or "keypoints" not in a or "bbox" not in a:
            raise InputError(path, f"{where} has no 'keypoints' or 'bbox'")
        if a.get("iscrowd", 0):
            continue
        if a.get("image_id") not in row:
            raise InputError(path, f"{where} refers to image_id {a.get('image_id')!r}, which is not in 'images'")
        kp = _keypoints(a["keypoints"], where, path)
        if not (kp[:, 2] > 0).any():
            continue  # COCO ignores people without labelled keypoints
        b = np.asarray(a["bbox"], dtype=float)
        if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
            raise InputError(path, f"{where}: bbox must be x, y, w, h with w, h > 0, got {a['bbox']}")
        kps.append(kp)
        boxes.append(b)
        rows.append(row[a["image_id"]])
    if not kps:
        raise InputError(path, "no annotation with labelled keypoints")
    return GroundTruth(np.stack(kps), np.stack(boxes), np.array(rows), images, str(path))


def load_coco_results(path, gt: GroundTruth) -> Predictions:
    """Predictions from a COCO results JSON (list of ``image_id``, ``keypoints``, ``score``).
    Keypoints with score ≤ 0 count as not predicted. Entries for unknown images are refused."""
    from simspine.errors import InputError

    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a ground-truth-like file holding predictions
    if not isinstance(data, list):
        raise InputError(path, "not a COCO results file (a JSON list of {image_id, keypoints, score})")
    row = {img.get("id"): i for i, img in enumerate(gt.images)}
    kps, scores, rows = [], [], []
    for j, d in enumerate(data):
        where = f"entry {j}"
        if not isinstance(d, dict) or "keypoints" not in d or "image_id" not in d:
            raise InputError(path, f"{where} has no 'image_id' or 'keypoints'")
        if d["image_id"] not in row:
            raise InputError(path, f"{where}: image_id {d['image_id']!r} is not in the ground truth {gt.path}")
        kp = _keypoints(d["keypoints"], where, path)
        uv = kp[:, :2].copy()
        uv[~(kp[:, 2] > 0)] = np.nan
        kps.append(uv)
        seen = kp[:, 2] > 0
        scores.append(float(d["score"]) if "score" in d else float(kp[seen, 2].mean()) if seen.any() else 0.0)
        rows.append(row[d["image_id"]])
    if not kps:
        return Predictions(np.zeros((0, K, 2)), np.zeros(0), np.zeros(0, dtype=int), Path(path).name)
    return Predictions(np.stack(kps), np.nan_to_num(np.array(scores)), np.array(rows), Path(path).name)


def _camera_frame(img: dict, path) -> tuple[str, int]:
    from simspine.errors import InputError
    from simspine.io.openpose import last_number

    fn = Path(str(img.get("file_name", "")))
    cam = img.get("camera") or (fn.parent.name.rsplit(".", 1)[-1] if fn.parent.name else None)
    frame = img.get("frame", last_number(fn.stem) if fn.stem else None)
    if not cam or frame is None:
        raise InputError(path, f"ground-truth image {img.get('id')!r} names no camera and frame "
                               "(fields 'camera', 'frame' or a file_name .../<stem>.<camera>/<frame>.jpg)")
    return str(cam), int(frame)


def load_openpose_predictions(folder, gt: GroundTruth, progress: bool = False) -> Predictions:
    """Predictions from a folder of OpenPose JSON (see the module docstring for the layout)."""
    from simspine.errors import InputError
    from simspine.io.openpose import numbered_frame_files, read_openpose_people

    root = Path(folder)
    files_of: dict[Path, dict[int, Path]] = {}

    def camera_folder(img, cam):
        subs = [root / str(img[k]) for k in ("subject",) if img.get(k)]
        cands = []
        for s in subs:
            for q in dict.fromkeys([img.get("sequence"), img.get("original_name")]):
                if q:
                    cands += [s / str(q) / "pose" / f"{cam}_json", s / str(q) / f"{cam}_json"]
        cands += [root / "pose" / f"{cam}_json", root / f"{cam}_json"]
        return next((c for c in cands if c.is_dir()), None)

    kps, scores, rows = [], [], []
    needed = sorted(set(gt.image_row.tolist()))
    found = 0
    from tqdm import tqdm

    for r in tqdm(needed, desc=f"reading {root.name}", unit="image", disable=not progress):
        img = gt.images[r]
        cam, frame = _camera_frame(img, gt.path)
        d = camera_folder(img, cam)
        if d is None:
            continue
        if d not in files_of:
            nums, files = numbered_frame_files(d)
            files_of[d] = dict(zip(nums.tolist(), files, strict=True))
        f = files_of[d].get(frame)
        if f is None:
            continue
        found += 1
        xy, conf = read_openpose_people(f, K)
        if xy is None:
            continue
        for p in range(len(xy)):
            seen = conf[p] > 0
            if not seen.any():
                continue
            kps.append(xy[p])
            scores.append(float(conf[p][seen].mean()))
            rows.append(r)
    if not found:
        raise InputError(folder, "no OpenPose file for any ground-truth image (looked for "
                                 "<subject>/<sequence>/pose/<camera>_json/, pose/<camera>_json/, <camera>_json/)")
    if not kps:
        return Predictions(np.zeros((0, K, 2)), np.zeros(0), np.zeros(0, dtype=int), root.name)
    return Predictions(np.stack(kps), np.array(scores), np.array(rows), root.name)


def load_predictions(path, gt: GroundTruth, progress: bool = False) -> Predictions:
    """A COCO results JSON file or an OpenPose folder (see the module docstring)."""
    from simspine.errors import InputError

    p = Path(path)
    if p.is_dir():
        return load_openpose_predictions(p, gt, progress)
    if not p.exists():
        raise InputError(path, "prediction file or folder not found")
    return load_coco_results(p, gt)


def match_to_people(gt: GroundTruth, pred: Predictions) -> np.ndarray:
    """(M,) ground-truth row each prediction is assigned to: the person of its image at the smallest
    median normalised distance over the person's labelled keypoints (-1: image without a person)."""
    from simspine.metrics import normalized_distance_2d

    out = np.full(len(pred.kp), -1)
    people_of: dict[int, np.ndarray] = {}
    for i, r in enumerate(gt.image_row):
        people_of.setdefault(int(r), []).append(i)
    for j, r in enumerate(pred.image_row):
        people = people_of.get(int(r))
        if not people:
            continue
        if len(people) == 1:
            out[j] = people[0]
            continue
        best, cost = people[0], np.inf
        for i in people:
            d = normalized_distance_2d(pred.kp[j], gt.kp[i, :, :2], gt.boxes[i])
            d = d[gt.kp[i, :, 2] > 0]
            c = float(np.median(np.where(np.isfinite(d), d, 1e9))) if d.size else np.inf
            if c < cost:
                best, cost = i, c
        out[j] = best
    return out


def evaluate(gt: GroundTruth, pred: Predictions) -> dict:
    """Every figure of one prediction set: ``{"body": {AP, AP50, AP75, AR}, "spine": {...},
    "pck": {"all": {"PCK@0.1", "PCK@0.2", "AUC"}, "spine": {...}}, "predictions", "people", "matched"}``."""
    from simspine.metrics import coco_oks, normalized_distance_2d, oks_subset, pck, pck_auc

    assign = match_to_people(gt, pred)
    keep = assign >= 0
    out: dict = {"predictions": int(len(pred.kp)), "people": int(len(gt.kp)),
                 "unassigned_predictions": int((~keep).sum())}
    for subset in ("body", "spine"):
        out[subset] = coco_oks(gt.kp, gt.boxes, pred.kp[keep], pred.scores[keep], subset=subset,
                               image_ids=assign[keep])
    # PCK: the closest prediction per person (the highest score breaks ties)
    best = np.full((len(gt.kp), K, 2), np.nan)
    best_cost = np.full(len(gt.kp), np.inf)
    for j in np.flatnonzero(keep)[np.argsort(-pred.scores[keep], kind="stable")]:
        i = assign[j]
        d = normalized_distance_2d(pred.kp[j], gt.kp[i, :, :2], gt.boxes[i])[gt.kp[i, :, 2] > 0]
        c = float(np.median(np.where(np.isfinite(d), d, 1e9))) if d.size else np.inf
        if c < best_cost[i]:
            best[i], best_cost[i] = pred.kp[j], c
    out["matched"] = int(np.isfinite(best_cost).sum())
    vis = gt.kp[..., 2] > 0
    out["pck"] = {}
    for name, ids in (("all", np.arange(K)), ("spine", oks_subset("spine"))):
        args = (best[:, ids], gt.kp[:, ids, :2], gt.boxes)
        v = vis[:, ids]
        p = pck(*args, thresholds=[0.1, 0.2], visible=v)
        out["pck"][name] = {"PCK@0.1": float(p[0]), "PCK@0.2": float(p[1]), "AUC": pck_auc(*args, visible=v)}
    return out


def table(results: dict[str, dict]) -> str:
    """Tab. 2 layout: one row per prediction set; APB ARB APS ARS AUC, then AP50/AP75 and PCK."""
    from simspine.bench.table import format_table

    h = ["Method", "APB", "ARB", "APS", "ARS", "AUC", "AP50B", "AP75B", "AP50S", "AP75S", "PCK@0.2", "AUC spine"]
    rows = [[label, r["body"]["AP"], r["body"]["AR"], r["spine"]["AP"], r["spine"]["AR"], r["pck"]["all"]["AUC"],
             r["body"]["AP50"], r["body"]["AP75"], r["spine"]["AP50"], r["spine"]["AP75"],
             r["pck"]["all"]["PCK@0.2"], r["pck"]["spine"]["AUC"]] for label, r in results.items()]
    return ("Tab. 2 layout: COCO OKS AP/AR, body (B, ids 0-16) and spine (S) subsets, SpineTrack-37 sigmas; "
            "PCK-AUC over 0-0.5 of the box's shorter side (all 37 keypoints unless noted)\n"
            + format_table(h, rows, ".3f"))


def add_arguments(p) -> None:
    p.add_argument("--gt", required=True, metavar="COCO_JSON",
                   help="ground truth: COCO keypoints JSON, SpineTrack-37 (simspine dataset export --format coco)")
    p.add_argument("--pred", required=True, nargs="+", metavar="PRED",
                   help="COCO results JSON or a folder of OpenPose JSON (simspine detect); several: one row each")
    p.add_argument("--label", nargs="+", default=None, help="row names for the --pred sets (default: their names)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")


def run(args) -> int:
    from simspine.errors import InputError
    from simspine.fileio import write_text_atomic

    gt = load_ground_truth(args.gt)
    labels = args.label or [Path(p).name for p in args.pred]
    if len(labels) != len(args.pred):
        raise InputError(None, f"{len(labels)} --label names for {len(args.pred)} --pred sets")
    results = {}
    for path, label in zip(args.pred, labels, strict=True):
        pred = load_predictions(path, gt, progress=True)
        results[label] = {"source": str(path), **evaluate(gt, pred)}
    print(f"ground truth {args.gt}: {len(gt.kp)} people in {len(set(gt.image_row.tolist()))} images")
    for label, r in results.items():
        extra = f", {r['unassigned_predictions']} on images without a person (left out)" \
            if r["unassigned_predictions"] else ""
        print(f"{label}: {r['predictions']} predictions, {r['matched']} of {r['people']} people matched{extra}")
    print()
    print(table(results))
    if args.json:
        write_text_atomic(Path(args.json), json.dumps({"gt": str(args.gt), "results": results}, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0
