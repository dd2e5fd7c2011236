"""Exports of a dataset file: the release's folder layout, COCO keypoints JSON, the lifting npz.

* :func:`export_release` → ``cameras/Calib_S*.toml`` (Pose2Sim TOML, OpenCV distortion),
  ``models/S*.osim`` (the subject's scaled model), ``positions/S*/S*_<seq>.trc`` (the 37 keypoints,
  or the 15 release markers for a file without them; Y up, m),
  ``kinematics/S*/S*_<seq>/S*_<seq>.mot`` (62 coordinates, degrees).
* :func:`export_coco` → ``<split>.json`` per split (``train``: S1 S5 S6 S7 S8, ``test``: S9 S11):
  one image per sequence, camera and frame (``file_name`` ``S1/S1_<seq>.<camera>/<frame:06d>.jpg``,
  Human3.6M's frame-extraction naming), one annotation per image with the 37 keypoints
  (v = 2 inside the image, 0 outside, with 0, 0), ``bbox`` x, y, w, h, ``area`` = w × h,
  ``num_keypoints``; category ``person`` with SpineTrack-37 ``keypoints``, ``skeleton`` (1-based
  pairs) and ``sigmas`` (OKS, from the package's ``spinetrack37.json``).
* :func:`export_lift_npz` → ``<split>.npz`` per split, one row per sequence, camera and frame:
  ``imgname``, ``center`` (2,) and ``scale`` (= 1.2 × longest box side / 200) of the box, ``part``
  (N, 37, 3) 2D + visibility, ``S`` (N, 37, 4) camera-frame metres + 1, ``S_world`` (N, 37, 3)
  OpenSim ground metres, ``angles`` (N, 62) kinematics (deg / m).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simspine.dataset.h36m import split_of
from simspine.dataset.store import Store
from simspine.errors import InputError
from simspine.fileio import write_text_atomic
from simspine.frames import yup_to_zup
from simspine.skeletons import spinetrack37
from simspine.trajectories import Trajectories

FORMATS = ("release", "coco", "lift-npz")
YUP = "opensim-ground (Y up)"


def _stem(subject: str, seq: str) -> str:
    return f"{subject}_{seq}"


def export_release(path, out) -> list[Path]:
    """Write the release's folder layout (see the module docstring); returns the files."""
    from simspine.calibration import write_calibration_toml
    from simspine.io.mot import write_mot
    from simspine.io.trc import write_trc

    out = Path(out)
    files = []
    with Store(path) as st:
        names37 = list(spinetrack37().names)
        for s in st.subjects():
            files.append(write_calibration_toml(out / "cameras" / f"Calib_{s}.toml", st.calibration(s),
                                                world_frame="Human3.6M world (Z up, metres)"))
            xml = st.model_xml(s)
            if xml:
                files.append(write_text_atomic(out / "models" / f"{s}.osim", xml))
            for q in st.sequences(s):
                seq = st.sequence(s, q)
                T = seq.n_frames
                t = seq.timestamps if seq.timestamps is not None else np.arange(T) / 50.0
                if seq.keypoints37 is not None:
                    traj = Trajectories(t, names37, seq.keypoints37, frame=YUP)
                else:
                    traj = Trajectories(t, st.markers_names, seq.markers, frame=YUP)
                stem = _stem(s, q)
                files.append(write_trc(out / "positions" / s / f"{stem}.trc", traj))
                files.append(write_mot(out / "kinematics" / s / stem / f"{stem}.mot", t, st.kinematic_axes,
                                       seq.kinematics, in_degrees=True, name=stem, frame=YUP,
                                       comment="SimSpine kinematics: rotations in degrees, translations in metres"))
    return files


def _rows(st: Store, split: str | None):
    """(subject, sequence name, Sequence) of the sequences of ``split`` that have 2D keypoints."""
    for _, seq in st.walk(splits=[split] if split else None, require=("keypoints2d", "boxes"),
                          purpose="'coco' and 'lift-npz' export (only 'release' works without them)"):
        yield seq.subject, seq.name, seq


def _imgname(s: str, q: str, cam: str, frame: int) -> str:
    return f"{s}/{_stem(s, q)}.{cam}/{frame:06d}.jpg"


def coco_category() -> dict:
    """The COCO ``categories`` entry of SpineTrack-37 (names, 1-based skeleton, OKS sigmas)."""
    sk = spinetrack37()
    return {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(sk.names),
            "skeleton": [[p + 1, c + 1] for p, c in sk.bones()], "sigmas": list(sk.oks_sigmas)}


def coco_dict(path, split: str | None = None) -> dict:
    """The COCO keypoints dict of ``split`` (None: every subject)."""
    images, anns = [], []
    with Store(path) as st:
        for s, q, seq in _rows(st, split):
            cams = st.calibration(s)
            k2, boxes = seq.keypoints2d, seq.boxes
            for c, cam in enumerate(cams):
                for t in range(seq.n_frames):
                    b = boxes[c, t]
                    if not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
                        continue  # nobody in view
                    iid = len(images) + 1
                    images.append({"id": iid, "file_name": _imgname(s, q, cam.name, t), "width": int(cam.size[0]),
                                   "height": int(cam.size[1]), "subject": s, "sequence": q, "camera": cam.name,
                                   "frame": t})
                    vis = k2[c, t, :, 2] > 0
                    kps = np.zeros((37, 3))
                    kps[vis, :2] = k2[c, t, vis, :2]
                    kps[vis, 2] = 2
                    anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1, "iscrowd": 0,
                                 "bbox": [float(v) for v in b], "area": float(b[2] * b[3]),
                                 "keypoints": [float(v) for v in kps.ravel()], "num_keypoints": int(vis.sum())})
    return {"info": {"description": "SimSpine (Human3.6M + SimSpine pipeline), SpineTrack-37 keypoints",
                     "split": split or "all"},
            "images": images, "annotations": anns, "categories": [coco_category()]}


def export_coco(path, out) -> list[Path]:
    """``out/<split>.json`` for each split present (see the module docstring)."""
    out = Path(out)
    with Store(path) as st:
        splits = sorted({split_of(s) for s in st.subjects()})
    return [write_text_atomic(out / f"{sp}.json", json.dumps(coco_dict(path, sp))) for sp in splits]


def lift_arrays(path, split: str | None = None) -> dict[str, np.ndarray]:
    """The lifting arrays of ``split`` (see the module docstring)."""
    cols = {k: [] for k in ("imgname", "center", "scale", "part", "S", "S_world", "angles")}
    with Store(path) as st:
        for s, q, seq in _rows(st, split):
            cams = st.calibration(s)
            Xw = yup_to_zup(seq.keypoints37)
            for c, cam in enumerate(cams):
                b = seq.boxes[c]
                ok = np.isfinite(b).all(-1) & (b[:, 2] > 0) & (b[:, 3] > 0)
                idx = np.flatnonzero(ok)
                cols["imgname"] += [_imgname(s, q, cam.name, int(t)) for t in idx]
                cols["center"].append(b[idx, :2] + b[idx, 2:] / 2)
                cols["scale"].append(1.2 * b[idx, 2:].max(-1) / 200.0)
                cols["part"].append(seq.keypoints2d[c, idx])
                Xc = cam.world_to_camera(Xw[idx].reshape(-1, 3)).reshape(len(idx), 37, 3)
                cols["S"].append(np.concatenate([Xc, np.ones(Xc.shape[:2] + (1,))], -1))
                cols["S_world"].append(seq.keypoints37[idx])
                cols["angles"].append(seq.kinematics[idx])
    out = {"imgname": np.array(cols["imgname"], dtype=str)}
    shapes = {"center": (0, 2), "scale": (0,), "part": (0, 37, 3), "S": (0, 37, 4), "S_world": (0, 37, 3),
              "angles": (0, 62)}
    for k, shp in shapes.items():
        out[k] = np.concatenate(cols[k]) if cols[k] else np.zeros(shp)
    return out


def export_lift_npz(path, out) -> list[Path]:
    """``out/<split>.npz`` for each split present (see the module docstring)."""
    from simspine.io.npz import save_npz

    out = Path(out)
    with Store(path) as st:
        splits = sorted({split_of(s) for s in st.subjects()})
    return [save_npz(out / f"{sp}.npz", **lift_arrays(path, sp)) for sp in splits]


def export(path, fmt: str, out) -> list[Path]:
    """Export ``path`` in format ``fmt`` (:data:`FORMATS`) into folder ``out``."""
    if fmt == "release":
        return export_release(path, out)
    if fmt == "coco":
        return export_coco(path, out)
    if fmt == "lift-npz":
        return export_lift_npz(path, out)
    raise InputError(None, f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
