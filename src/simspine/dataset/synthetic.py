"""A miniature Human3.6M tree with known truth, generated on the model (tests, ``bench build``).

:func:`write_mini_h36m` has synthetic subjects (:mod:`simspine.synth.subject`) perform actions on
Human3.6M's stage of each subject, and writes what Human3.6M would hold:
``<root>/<S>/MyPoseFeatures/D3_Positions/<Action>.cdf`` (32 joints, mm, Z up; the 12 limb joints are
the subject's true SpineTrack-37 limb points, the rest placed on nearby true points) and, with
``spine_2d``, OpenPose JSON per camera of the exact projections of the 37 true keypoints
(``<spine_2d>/<S>/<sequence>/pose/<camera>_json/``). Returns the truth (37 keypoints, Y up, m).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simspine.dataset.h36m import D3_DIR, parse_sequence_name, sequence_id, write_cdf_pose
from simspine.frames import yup_to_zup
from simspine.skeletons import H36M32_NAMES, H36M_TO_SPINETRACK, spinetrack37

#: Human3.6M action → synthetic action of :mod:`simspine.synth.motion`
SYNTH_ACTION = {"Walking": "walking", "WalkDog": "walking", "WalkTogether": "walking", "SittingDown": "sitdown",
                "Sitting": "sitdown", "Phoning": "phoning", "Purchases": "pickup", "Directions": "reach",
                "Discussion": "twist", "Greeting": "reach", "Posing": "sway", "Waiting": "sway",
                "Eating": "phoning", "Smoking": "phoning", "Photo": "reach"}

#: Human3.6M joints that are not mapped to a SpineTrack-37 keypoint: the true point used for them
_OTHER = {"Hip": "Hip", "Spine0": "Spine_01", "Spine": "Spine_03", "Thorax": "Neck", "Neck/Nose": "Nose",
          "Head": "Head", "RToe": "RBigToe", "RToeSite": "RBigToe", "LToe": "LBigToe", "LToeSite": "LBigToe",
          "LShoulderRoot": "Neck", "RShoulderRoot": "Neck"}


def h36m_joints_from_keypoints(kp_yup: np.ndarray) -> np.ndarray:
    """(T, 37, 3) SpineTrack-37 keypoints (Y up, m) → (T, 32, 3) Human3.6M joints (Z up, mm)."""
    sk = spinetrack37()
    kp = yup_to_zup(kp_yup) * 1000.0
    out = np.empty(kp.shape[:1] + (32, 3))
    for i, name in enumerate(H36M32_NAMES):
        if name in H36M_TO_SPINETRACK:
            src = H36M_TO_SPINETRACK[name]
        elif name in _OTHER:
            src = _OTHER[name]
        else:  # hand end sites: the wrist
            src = "LWrist" if name.startswith("L") else "RWrist"
        out[:, i] = kp[:, sk.index(src)]
    return out


def write_mini_h36m(root, subjects=("S1", "S5"), actions=("Walking 1", "SittingDown"), frames: int = 100,
                    seed: int = 0, spine_2d=None) -> dict:
    """Write a miniature Human3.6M tree (see the module docstring).

    Returns ``{uid: {"keypoints": (T, 37, 3) Y up m, "coordinates": (T, N) rad/m,
    "coordinate_names": [...], "height_m": float}}``, uid ``"S1/Walking_1"``.
    """
    from simspine.calibration import h36m_cameras
    from simspine.io.openpose import write_openpose_folder
    from simspine.synth.motion import generate_motion
    from simspine.synth.rig import h36m_rig
    from simspine.synth.subject import build_model, perform, random_subject

    root = Path(root)
    rng = np.random.default_rng(seed)
    truth = {}
    for s in subjects:
        subj = random_subject(rng, jitter_m=0.0)
        model = build_model(subj)
        rig = h36m_rig(s)
        for a in actions:
            action, sub = parse_sequence_name(a)
            motion = generate_motion(SYNTH_ACTION[action], seconds=frames / 50.0, fps=50.0, rng=rng)
            gt = perform(subj, motion, heading_rad=float(rng.uniform(0, 2 * np.pi)), stage_yup=rig.stage_yup,
                         model=model)
            kp = gt.keypoints.xyz
            write_cdf_pose(root.joinpath(s, *D3_DIR, f"{a}.cdf"), h36m_joints_from_keypoints(kp))
            if spine_2d is not None:
                for cam in h36m_cameras(s):
                    uv = cam.project(yup_to_zup(kp))
                    w, h = cam.size
                    ok = np.isfinite(uv).all(-1) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & \
                        (uv[..., 1] < h)
                    write_openpose_folder(Path(spine_2d) / s / sequence_id(action, sub) / "pose" / f"{cam.name}_json",
                                          np.where(ok[..., None], uv, np.nan), ok.astype(float), prefix=cam.name)
            truth[f"{s}/{sequence_id(action, sub)}"] = {
                "keypoints": kp, "coordinates": gt.coordinates, "coordinate_names": gt.coordinate_names,
                "height_m": subj.height_m}
    return truth
