"""Checks of a dataset file (ours or the official release's): layout, shapes, values, consistency.

:func:`validate_store` returns a list of problems (empty when the file passes) and a list of
notes (figures measured on the way). Checks:

* ``metadata/kinematic_axes`` are the 62 release axes and ``markers_names`` the 15 release names;
* per subject: calibration arrays of consistent shapes, rotations orthonormal, sizes positive;
* per sequence: ``markers`` (T, 15, 3) and ``kinematics`` (T, 62) finite; extras, when present,
  of matching T, C and K; ``markers`` equal to the release markers' rows of ``keypoints37``;
  keypoint pairs on one rigid model body keep their distance (spread under 1 mm); the stored 2D
  agree with the 37 keypoints projected through the stored (OpenCV) calibration (median within
  :data:`REPROJ_TOLERANCE_PX`; Human3.6M's tangential distortion refitted to OpenCV's differs by
  a fraction of a pixel); the observation status (T, 37) holds codes 0-3 and ``region_status``
  (T, 3) follows from it (:mod:`simspine.observation`).
"""

from __future__ import annotations

import numpy as np

from simspine.dataset.release import kinematic_axes, marker_indices, markers_names
from simspine.dataset.store import Store
from simspine.frames import yup_to_zup
from simspine.skeletons import spinetrack37

REPROJ_TOLERANCE_PX = 2.0
#: keypoint pairs fixed on one body of the model (torso markers; eyes/ears/nose/head on the head)
RIGID_PAIRS = (("LClavicle", "RClavicle"), ("Spine_05", "Neck"), ("LLatissimus", "RLatissimus"),
               ("Nose", "Head"), ("LEar", "REar"))
RIGID_TOLERANCE_M = 1e-3


def _status_problems(where: str, status, region, T: int) -> list[str]:
    """Problems of the observation arrays: codes 0-3 of the right shapes, regions consistent with
    the keypoints (:func:`simspine.observation.region_status`)."""
    from simspine.observation import REGIONS, region_status

    out = []
    if status is None:
        return out
    if status.shape != (T, 37):
        return [f"{where}/status: shape {status.shape}, expected ({T}, 37)"]
    bad = int(((status < 0) | (status > 3)).sum())
    if bad:
        return [f"{where}/status: {bad} codes outside 0-3 (none, observed, filled, inferred)"]
    if region is not None:
        if region.shape != (T, len(REGIONS)):
            out.append(f"{where}/region_status: shape {region.shape}, expected ({T}, {len(REGIONS)})")
        elif not np.array_equal(region, region_status(status)):
            n = int((region != region_status(status)).any(1).sum())
            out.append(f"{where}/region_status: {n} frames disagree with the keypoints' status")
    return out


def validate_store(path) -> tuple[list[str], list[str]]:
    """(problems, notes) for the dataset file ``path``; see the module docstring."""
    problems: list[str] = []
    notes: list[str] = []
    sk = spinetrack37()
    with Store(path) as st:
        if st.kinematic_axes != kinematic_axes():
            problems.append(f"metadata/kinematic_axes: {len(st.kinematic_axes)} axes, not the release's 62 in order")
        if st.markers_names != markers_names():
            problems.append(f"metadata/markers_names: {st.markers_names} are not the release's 15 markers")
        subjects = st.subjects()
        if not subjects:
            problems.append("no subject groups")
        n_seq = n_frames = 0
        reproj = []
        observed: list[tuple[int, dict]] = []
        for s in subjects:
            if "calibration" not in st.f[s]:
                problems.append(f"{s}: no calibration group")
                cams = None
            else:
                try:
                    cams = st.calibration(s)
                except Exception as e:
                    problems.append(f"{s}/calibration: unusable ({e})")
                    cams = None
            for q in st.sequences(s):
                n_seq += 1
                where = f"{s}/{q}"
                seq = st.sequence(s, q)
                T = seq.n_frames
                n_frames += T
                if seq.markers.shape != (T, 15, 3):
                    problems.append(f"{where}/markers: shape {seq.markers.shape}, expected (T, 15, 3)")
                if seq.kinematics.shape != (T, 62):
                    problems.append(f"{where}/kinematics: shape {seq.kinematics.shape}, expected ({T}, 62)")
                for name, arr in (("markers", seq.markers), ("kinematics", seq.kinematics)):
                    if not np.isfinite(arr).all():
                        problems.append(f"{where}/{name}: {int((~np.isfinite(arr)).sum())} non-finite values")
                kp = seq.keypoints37
                if kp is None:
                    continue
                if kp.shape != (T, 37, 3):
                    problems.append(f"{where}/keypoints37: shape {kp.shape}, expected ({T}, 37, 3)")
                    continue
                if not np.allclose(kp[:, marker_indices()], seq.markers, atol=1e-9, equal_nan=True):
                    problems.append(f"{where}: markers differ from the release markers' rows of keypoints37")
                for a, b in RIGID_PAIRS:
                    d = np.linalg.norm(kp[:, sk.index(a)] - kp[:, sk.index(b)], axis=-1)
                    if np.nanmax(d) - np.nanmin(d) > RIGID_TOLERANCE_M:
                        problems.append(f"{where}: {a}-{b} distance varies by {1000 * (np.nanmax(d) - np.nanmin(d)):.1f} mm "
                                        "on one rigid body")
                ts = seq.timestamps
                if ts is not None and (ts.shape != (T,) or np.any(np.diff(ts) <= 0)):
                    problems.append(f"{where}/timestamps: not ({T},) strictly increasing")
                k2 = seq.keypoints2d
                if k2 is not None and cams is not None:
                    if k2.shape != (len(cams), T, 37, 3):
                        problems.append(f"{where}/keypoints2d: shape {k2.shape}, expected ({len(cams)}, {T}, 37, 3)")
                        continue
                    for c, cam in enumerate(cams):
                        uv = cam.project(yup_to_zup(kp))
                        vis = k2[c, ..., 2] > 0
                        if vis.any():
                            reproj.append(np.linalg.norm(uv[vis] - k2[c, ..., :2][vis], axis=-1))
                problems += _status_problems(where, seq.status, seq.region_status, T)
                if seq.observed_share() is not None:
                    observed.append((T, seq.observed_share()))
                b = seq.boxes
                if b is not None and k2 is not None and b.shape != k2.shape[:2] + (4,):
                    problems.append(f"{where}/boxes: shape {b.shape}, expected {k2.shape[:2] + (4,)}")
        if reproj:
            e = np.concatenate(reproj)
            med = float(np.median(e))
            notes.append(f"2D vs calibration reprojection: median {med:.3f} px, max {float(e.max()):.3f} px")
            if med > REPROJ_TOLERANCE_PX:
                problems.append(f"stored 2D keypoints and the calibration disagree: median {med:.2f} px")
        if observed and sum(t for t, _ in observed):
            n = sum(t for t, _ in observed)
            shares = {r: sum(t * d[r] for t, d in observed) / n for r in observed[0][1]}
            notes.append("spine observed (share of frames, region_status): "
                         + ", ".join(f"{r} {100 * v:.1f}%" for r, v in shares.items()))
        notes.insert(0, f"{len(subjects)} subjects, {n_seq} sequences, {n_frames} frames")
    return problems, notes
