"""A synthetic lifting benchmark store: several subjects, actions, cameras and detector-noised 2D.

More realistic than a toy pose cloud: each subject is the SpineTrack-37 OpenSim model scaled to a
random height with varied segment proportions (:func:`simspine.synth.subject.random_subject`),
performing the generator's actions (:data:`simspine.synth.motion.ACTIONS`: walking, sitting down,
picking up, reaching, twisting, phoning, swaying) with random timing and trunk/neck/arm variation,
turned to a random heading on the Human3.6M stage and seen by that subject's four Human3.6M
cameras. Train subjects S1 S5 S6 S7 S8, test S9 S11 (the store's split).

Trunk and limbs move together (``coupling``, default 1): on top of each action, three smooth random
latent signals per sequence (a posture offset plus slow variation below 0.4 Hz) drive the trunk
and the limbs jointly, as in people: forward lean (lumbar flexion with pelvic tilt, hip and knee
flexion, arms hanging/reaching forward, the neck extending to keep the gaze), axial twist (lumbar
rotation with pelvic rotation, counter-swinging arms, the head turning back) and lateral bending
(with a weight shift at the hips, the arms and the head kept upright). The action generators alone
(``coupling=0``) vary the spine mostly by independent per-coordinate wiggles, which the limbs say
nothing about. ``jitter_m`` (default 0): per-subject random keypoint placement offsets; SimSpine's
labels are the fitted model's virtual markers, which have none, and an offset's depth component
is a per-subject error that no 2D input can reveal (the generic synthetic subjects use 1 cm).

The store holds the
exact 2D projections (``gt``); with ``pred_2d`` the simulated detector's output (Gaussian noise,
outliers, left/right swaps, self-occlusion reported as low-confidence guesses:
:mod:`simspine.synth.detector`) is written beside it as OpenPose JSON in the
``DIR/<subject>/<sequence>/pose/<camera>_json/`` layout ``bench lift --pred-2d`` reads.

``python -m simspine.lift.synthetic OUT.h5 [--pred-2d DIR] [--seconds S] [--fps F] [--repeats N]
[--coupling C] [--jitter-m M]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TRAIN = ("S1", "S5", "S6", "S7", "S8")
TEST = ("S9", "S11")


# Coupled trunk-limb synergies: latent -> {coordinate: gain} (gains in coordinate units per latent unit;
# the latents are in the L5_S1 coordinate's units). Signs follow simspine.synth.motion's conventions
# (L5_S1_Flex_Ext < 0 and pelvis_tilt < 0 flex forward; arm_flex > 0 raises the arm forward; a positive
# L5_S1 axial rotation goes with the right arm forward, as in its walking and twist actions).
SYNERGIES: dict[str, dict[str, float]] = {
    "lean": {"L5_S1_Flex_Ext": 1.0, "pelvis_tilt": 1.5, "hip_flexion_r": -1.5, "hip_flexion_l": -1.5,
             "knee_angle_r": -0.8, "knee_angle_l": -0.8, "arm_flex_r": -4.0, "arm_flex_l": -4.0,
             "elbow_flex_r": -3.0, "elbow_flex_l": -3.0, "neck_flexion": -2.0},
    "twist": {"L5_S1_axial_rotation": 1.0, "pelvis_rotation": 0.6, "arm_flex_r": 2.0, "arm_flex_l": -2.0,
              "neck_rotation": -2.0, "hip_rotation_r": 0.5, "hip_rotation_l": 0.5},
    "bend": {"L5_S1_Lat_Bending": 1.0, "pelvis_list": -1.0, "hip_adduction_r": 2.0, "hip_adduction_l": -2.0,
             "neck_bending": -3.0, "arm_add_r": 4.0, "arm_add_l": 4.0},
}
#: latent: (posture offset low, high, slow variation peak amplitude), L5_S1 units (rad)
LATENTS = {"lean": (-0.05, 0.02, 0.05), "twist": (-0.03, 0.03, 0.08), "bend": (-0.01, 0.01, 0.02)}


def _slow(t: np.ndarray, rng: np.random.Generator, amp: float, fmax: float = 0.4) -> np.ndarray:
    """Smooth random variation: three sinusoids below ``fmax`` Hz, peak amplitude about ``amp``."""
    out = np.zeros_like(t)
    for _ in range(3):
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(0.05, fmax) * t + rng.uniform(0, 2 * np.pi))
    return amp * out / 2.0


def couple_motion(motion, rng: np.random.Generator, strength: float = 1.0):
    """``motion`` with the trunk-limb synergies added (see the module docstring): each latent of
    :data:`LATENTS` is a random posture offset plus slow variation, times ``strength``, applied through
    :data:`SYNERGIES` with per-sequence gains varied by ±20%; coordinates kept in range (soft clip)."""
    from simspine.synth.motion import RANGES, Motion, soft_clip

    if strength <= 0:
        return motion
    t = motion.time
    c = {k: v.copy() for k, v in motion.coords.items()}
    for name, gains in SYNERGIES.items():
        lo, hi, amp = LATENTS[name]
        z = strength * (rng.uniform(lo, hi) + _slow(t, rng, amp))
        for coord, g in gains.items():
            c[coord] = c[coord] + g * rng.uniform(0.8, 1.2) * z
    for coord in {k for g in SYNERGIES.values() for k in g}:
        c[coord] = soft_clip(c[coord], *RANGES[coord])
    return Motion(t, c, motion.action, dict(motion.meta, coupling=float(strength)))


def write_synthetic_store(path, subjects=TRAIN + TEST, actions=None, seconds: float = 10.0, fps: float = 10.0,
                          repeats: int = 2, seed: int = 0, pred_2d=None, detector=None, progress: bool = True,
                          coupling: float = 1.0, jitter_m: float = 0.0) -> Path:
    """Write the store ``path`` (see the module docstring); returns it.

    ``fps``: frames per second stored (every stored frame is a lifting sample with ``--rate-hz fps``);
    ``repeats``: sequences per action and subject (``<action>_<r>``), each with its own timing,
    variation and heading. ``coupling``: strength of the trunk-limb synergies (0: the action
    generators alone); ``jitter_m``: per-subject keypoint placement offsets, m RMS.
    ``detector``: :class:`~simspine.synth.detector.DetectorConfig` for
    ``pred_2d`` (default: 3 px noise, 5% outliers, 0.5% swaps, occluded points reported as guesses).
    """
    from tqdm import tqdm

    from simspine.calibration import h36m_cameras
    from simspine.dataset.release import marker_indices
    from simspine.dataset.sequence import project_keypoints
    from simspine.dataset.store import write_store
    from simspine.frames import yup_to_zup, zup_to_yup
    from simspine.io.openpose import write_openpose_folder
    from simspine.synth.detector import DetectorConfig, simulate_detections
    from simspine.synth.motion import ACTIONS, generate_motion
    from simspine.synth.rig import h36m_rig
    from simspine.synth.subject import build_model, perform, random_subject

    actions = tuple(actions or ACTIONS)
    det_cfg = detector or DetectorConfig(occluded_drop=0.0, miss_rate=0.0)
    rng = np.random.default_rng(seed)
    subj_info, results = {}, []
    jobs = [(s, a, r) for s in subjects for a in actions for r in range(1, repeats + 1)]
    bar = tqdm(total=len(jobs), desc="synthetic lifting store", unit="seq", disable=not progress)
    for s in subjects:
        cams = h36m_cameras(s)
        stage = zup_to_yup(h36m_rig(s).stage_zup)
        subject = random_subject(rng, jitter_m=jitter_m)
        model = build_model(subject)
        subj_info[s] = {"cameras": cams, "model_xml": None, "scaling": None}
        for a in actions:
            for r in range(1, repeats + 1):
                motion = couple_motion(generate_motion(a, seconds, fps, rng=rng), rng, coupling)
                gt = perform(subject, motion, heading_rad=float(rng.uniform(-np.pi, np.pi)), stage_yup=stage,
                             model=model)
                kp = gt.keypoints.xyz
                T = len(kp)
                name = f"{a}_{r}"
                uvv, boxes = project_keypoints(kp, cams)
                results.append({"markers": kp[:, marker_indices()], "kinematics": np.zeros((T, 62)),
                                "keypoints37": kp, "timestamps": np.arange(T) / fps, "keypoints2d": uvv,
                                "boxes": boxes,
                                "meta": {"subject": s, "sequence": name, "action": a, "subaction": str(r),
                                         "original_name": name, "rate_hz": float(fps),
                                         "height_m": subject.height_m}})
                if pred_2d is not None:
                    det = simulate_detections(yup_to_zup(kp), cams, det_cfg, rng)
                    for c, cam in enumerate(cams):
                        write_openpose_folder(Path(pred_2d) / s / name / "pose" / f"{cam.name}_json", det.uv[c],
                                              det.conf[c], prefix=cam.name)
                bar.update(1)
    bar.close()
    return write_store(path, subj_info, results, {"generator": "simspine.lift.synthetic", "seed": seed,
                                                  "seconds": seconds, "fps": fps, "repeats": repeats,
                                                  "actions": list(actions), "coupling": coupling,
                                                  "jitter_m": jitter_m, "detector": det_cfg.as_dict()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m simspine.lift.synthetic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("out", help="store to write (.h5)")
    p.add_argument("--pred-2d", default=None, metavar="DIR", help="also write simulated detections here")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coupling", type=float, default=1.0, help="trunk-limb synergy strength (0: none)")
    p.add_argument("--jitter-m", type=float, default=0.0, help="per-subject keypoint offsets, m RMS")
    a = p.parse_args(argv)
    print(write_synthetic_store(a.out, seconds=a.seconds, fps=a.fps, repeats=a.repeats, seed=a.seed,
                                pred_2d=a.pred_2d, coupling=a.coupling, jitter_m=a.jitter_m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
