"""A synthetic lifting benchmark store: several subjects, actions, cameras and detector-noised 2D.

More realistic than a toy pose cloud: each subject is the SpineTrack-37 OpenSim model scaled to a
random height with varied segment proportions (:func:`simspine.synth.subject.random_subject`),
performing the generator's actions (:data:`simspine.synth.motion.ACTIONS`: walking, sitting down,
picking up, reaching, twisting, phoning, swaying) with random timing and trunk/neck/arm variation,
turned to a random heading on the Human3.6M stage and seen by that subject's four Human3.6M
cameras. Train subjects S1 S5 S6 S7 S8, test S9 S11 (the store's split). The store holds the
exact 2D projections (``gt``); with ``pred_2d`` the simulated detector's output (Gaussian noise,
outliers, left/right swaps, self-occlusion reported as low-confidence guesses:
:mod:`simspine.synth.detector`) is written beside it as OpenPose JSON in the
``DIR/<subject>/<sequence>/pose/<camera>_json/`` layout ``bench lift --pred-2d`` reads.

``python -m simspine.lift.synthetic OUT.h5 [--pred-2d DIR] [--seconds S] [--fps F] [--repeats N]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TRAIN = ("S1", "S5", "S6", "S7", "S8")
TEST = ("S9", "S11")


def write_synthetic_store(path, subjects=TRAIN + TEST, actions=None, seconds: float = 10.0, fps: float = 10.0,
                          repeats: int = 2, seed: int = 0, pred_2d=None, detector=None, progress: bool = True) -> Path:
    """Write the store ``path`` (see the module docstring); returns it.

    ``fps``: frames per second stored (every stored frame is a lifting sample with ``--rate-hz fps``);
    ``repeats``: sequences per action and subject (``<action>_<r>``), each with its own timing,
    variation and heading. ``detector``: :class:`~simspine.synth.detector.DetectorConfig` for
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
        subject = random_subject(rng)
        model = build_model(subject)
        subj_info[s] = {"cameras": cams, "model_xml": None, "scaling": None}
        for a in actions:
            for r in range(1, repeats + 1):
                motion = generate_motion(a, seconds, fps, rng=rng)
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
                                                  "actions": list(actions), "detector": det_cfg.as_dict()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m simspine.lift.synthetic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("out", help="store to write (.h5)")
    p.add_argument("--pred-2d", default=None, metavar="DIR", help="also write simulated detections here")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(write_synthetic_store(a.out, seconds=a.seconds, fps=a.fps, repeats=a.repeats, seed=a.seed,
                                pred_2d=a.pred_2d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
