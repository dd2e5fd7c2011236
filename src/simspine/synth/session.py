"""Synthetic multi-view sessions: a subject performs an action in front of a rig, a simulated
detector watches, and everything is written as a Pose2Sim-style session plus its ground truth.

Folder layout written by :func:`write_session`::

    <out>/Config.toml                        [project] frame_rate (Pose2Sim's key)
    <out>/calibration/Calib_synthetic.toml   the rig (Z-up world, metres; OpenCV distortion)
    <out>/pose/<camera>_json/*.json          OpenPose JSON per frame, SpineTrack-37 order
    <out>/groundtruth/keypoints.trc          true 37 keypoints, OpenSim ground frame (Y up), metres
    <out>/groundtruth/coordinates.mot        every model coordinate (degrees / metres)
    <out>/groundtruth/rotations.csv|.npz     intervertebral and vertebral-segment angles (degrees)
    <out>/groundtruth/subject.osim           the generator's scaled and jittered model
    <out>/groundtruth/detections.npz         the simulated 2D detections with their error masks
    <out>/synth.json                         how it was made: seed, action, subject, detector, frames

Frames: the calibration's world is the rig's (Z up). The ground-truth model frame is
``zup_to_yup`` of that world (Pose2Sim's convention), so a 3D point triangulated from the
session and mapped with :func:`simspine.frames.zup_to_yup` compares directly with the TRC.

The cameras are written with OpenCV distortion; Human3.6M cameras (whose tangential model is
not OpenCV's) are converted by a least-squares fit first and the session is *projected with the
converted cameras*, so the written calibration is exactly the one that made the 2D points.
"""

from __future__ import annotations

import json
import os
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.fileio import write_text_atomic
from simspine.skeletons import spinetrack37
from simspine.synth.detector import Detections, DetectorConfig, simulate_detections
from simspine.synth.motion import TRANSLATIONS, generate_motion
from simspine.synth.rig import WORLD_FRAME, Rig, make_rig
from simspine.synth.subject import GroundTruth, build_model, perform, random_subject, save_model

FORMAT = "simspine.synthetic-session"


@dataclass
class SynthConfig:
    """Everything that defines a synthetic session (a pure function of this and nothing else).

    Attributes:
        action: one of :data:`simspine.synth.motion.ACTIONS`.
        seconds, fps: duration (s) and frame rate (Hz; Human3.6M's 50 by default).
        seed: seeds every random choice (subject, motion, heading, detector).
        rig: ``"h36m"``, ``"h36m:S5"`` or a calibration file path.
        height_m: subject height (random in 1.5-1.95 m when None).
        proportion_spread: per-segment proportion variation (+-, fraction).
        jitter_m: RMS marker-placement jitter (m); 0 for none.
        heading_deg: subject facing direction (random in +-60 deg when None).
        detector: the simulated detector's parameters.
    """

    action: str = "walking"
    seconds: float = 4.0
    fps: float = 50.0
    seed: int = 0
    rig: str = "h36m"
    height_m: float | None = None
    proportion_spread: float = 0.05
    jitter_m: float = 0.01
    heading_deg: float | None = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["detector"] = self.detector.as_dict()
        return d


@dataclass
class SyntheticSession:
    """An in-memory synthetic session: rig (OpenCV cameras), ground truth and 2D detections."""

    config: SynthConfig
    rig: Rig
    truth: GroundTruth
    detections: Detections
    world_keypoints: np.ndarray  # (T, 37, 3) true keypoints in the rig's world (Z up), metres
    timings: dict = field(default_factory=dict)
    model: object = None  # the generator's opensim.Model (scaled, jittered)


def _opencv_rig(rig: Rig) -> tuple[Rig, float]:
    cams, worst = [], 0.0
    for c in rig.cameras:
        if c.dist_model != "opencv":
            c = c.converted("opencv", exact=False)
            worst = max(worst, float(getattr(c, "conversion_error_px", 0.0)))
        cams.append(c)
    return Rig(cams, rig.stage_zup, rig.name), worst


def make_session(config: SynthConfig | None = None) -> SyntheticSession:
    """Generate subject, motion, ground truth and detections for ``config`` (no files written)."""
    cfg = config or SynthConfig()
    rng = np.random.default_rng(cfg.seed)
    # independent streams, so that changing the detector leaves the motion unchanged
    r_subject, r_motion, r_detector = (np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, 3))
    t0 = _time.perf_counter()
    rig, conv_err = _opencv_rig(make_rig(cfg.rig))
    subject = random_subject(r_subject, cfg.height_m, proportion_spread=cfg.proportion_spread, jitter_m=cfg.jitter_m)
    heading = np.deg2rad(cfg.heading_deg) if cfg.heading_deg is not None else float(r_motion.uniform(-np.pi / 3, np.pi / 3))
    motion = generate_motion(cfg.action, cfg.seconds, cfg.fps, r_motion)
    model = build_model(subject)
    truth = perform(subject, motion, heading, rig.stage_yup, model=model)
    t1 = _time.perf_counter()
    world = rig.model_to_world(truth.keypoints.xyz)
    det = simulate_detections(world, rig.cameras, cfg.detector, r_detector)
    t2 = _time.perf_counter()
    truth.meta.update(distortion_fit_error_px=conv_err)
    return SyntheticSession(cfg, rig, truth, det, world,
                            {"motion_s": t1 - t0, "detector_s": t2 - t1, "frames": truth.keypoints.n_frames}, model)


def write_session(out: str | os.PathLike, session: SyntheticSession) -> Path:
    """Write ``session`` as a Pose2Sim-style folder plus ground truth (layout in the module docstring)."""
    from simspine.biomech.fitting import write_rotations
    from simspine.calibration import write_calibration_toml
    from simspine.io.mot import write_mot
    from simspine.io.npz import save_npz
    from simspine.io.openpose import write_openpose_folder
    from simspine.io.trc import write_trc

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    cfg, truth, det = session.config, session.truth, session.detections
    (out / "calibration").mkdir(parents=True, exist_ok=True)
    write_calibration_toml(out / "calibration" / "Calib_synthetic.toml", session.rig.cameras, world_frame=WORLD_FRAME)
    write_text_atomic(out / "Config.toml",
                      "# Pose2Sim-style project config written by simspine synth\n"
                      f"[project]\nframe_rate = {float(cfg.fps)!r}\n\n"
                      "[pose]\npose_model = \"SpineTrack37\"  # 37 keypoints, SpineTrack-37 order\n")
    for c, cam in enumerate(session.rig.cameras):
        folder = out / "pose" / f"{cam.name}_json"
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.json"):  # frames of an earlier, longer session would be read too
            stale.unlink()
        write_openpose_folder(folder, det.uv[c], det.conf[c], prefix=cam.name)

    gt = out / "groundtruth"
    gt.mkdir(exist_ok=True)
    write_trc(gt / "keypoints.trc", truth.keypoints)
    coords = truth.coordinates.copy()
    rot = np.array([n not in TRANSLATIONS for n in truth.coordinate_names])
    coords[:, rot] = np.rad2deg(coords[:, rot])
    write_mot(gt / "coordinates.mot", truth.keypoints.time, truth.coordinate_names, coords, in_degrees=True,
              frame="opensim-ground (Y up)", comment="synthetic ground truth written by simspine synth")
    write_rotations(truth.rotations, gt)  # the same files annotate's FK stage writes, so they compare directly
    save_npz(gt / "detections.npz", cameras=np.array(det.cameras), uv=det.uv, conf=det.conf, true_uv=det.true_uv,
             occluded=det.occluded, outlier=det.outlier, swapped=det.swapped, missed=det.missed,
             meta_json=json.dumps({"units": "pixels (distorted image coordinates)",
                                   "keypoints": "SpineTrack-37", "detector": det.config}))
    save_model(session.model, gt / "subject.osim")
    manifest = {
        "format": FORMAT, "version": 1,
        "config": cfg.as_dict(),
        "rig": {"name": session.rig.name, "cameras": [c.name for c in session.rig.cameras],
                "stage_zup_m": session.rig.stage_zup.tolist(), "world_frame": WORLD_FRAME,
                "distortion_fit_error_px": truth.meta.get("distortion_fit_error_px", 0.0)},
        "subject": truth.subject.describe(),
        "motion": {k: v for k, v in truth.motion.meta.items()},
        "frames": {"calibration": WORLD_FRAME, "pose": "pixels", "groundtruth": "opensim-ground (Y up), metres; "
                   "= zup_to_yup(calibration world)"},
        "keypoints": list(spinetrack37().names),
        "n_frames": int(truth.keypoints.n_frames),
        "detections": {"occluded_share": float(det.occluded.mean()), "outlier_share": float(det.outlier.mean()),
                       "missed_share": float(det.missed.mean()), "swapped_share": float(det.swapped.mean())},
    }
    write_text_atomic(out / "synth.json", json.dumps(manifest, indent=1, default=float))
    return out


def written_config(out: str | os.PathLike) -> dict | None:
    """The config recorded in ``out/synth.json`` (written last, so the session is complete), or None."""
    try:
        return json.loads((Path(out) / "synth.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def synthesize(out: str | os.PathLike, config: SynthConfig | None = None) -> SyntheticSession:
    """Generate and write a synthetic session; returns it (in memory as well).

    A complete session already in ``out`` with the same config is left as it is (generation is
    deterministic, so it holds the same data): its files keep their times, and a pipeline run on
    it that was interrupted resumes instead of starting again.
    """
    session = make_session(config)
    if written_config(out) != json.loads(json.dumps(session.config.as_dict(), default=float)):
        write_session(out, session)
    return session
