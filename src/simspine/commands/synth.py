"""``simspine synth``: write a synthetic multi-view session with its ground truth."""

from __future__ import annotations

import time
from pathlib import Path

from simspine.commands._args import fraction, fraction_below_one, nonneg_float, nonneg_int, positive_float

NAME = "synth"
HELP = "write a synthetic Pose2Sim-style session (calibration, OpenPose JSON) plus ground truth"
DESCRIPTION = (
    "Generate a subject (random height and proportions, jittered markers) performing an action on "
    "the spine-aware model, watch it with a camera rig (Human3.6M's four cameras by default) and a "
    "simulated 2D detector, and write a Pose2Sim-style session: calibration/*.toml (Z-up world, "
    "metres), pose/<camera>_json/ (SpineTrack-37 OpenPose JSON), and groundtruth/ (TRC of the 37 "
    "keypoints and MOT of all coordinates in OpenSim's Y-up ground frame, rotations CSV/npz)."
)


def add_detector_arguments(p) -> None:
    """Detector options shared with ``simspine demo`` and the closed-loop benchmark."""
    g = p.add_argument_group("simulated detector")
    g.add_argument("--noise-px", type=nonneg_float, default=3.0, help="Gaussian pixel noise SD (default: %(default)s)")
    g.add_argument("--outlier-rate", type=fraction, default=0.05, help="share of gross outliers (default: %(default)s)")
    g.add_argument("--miss-rate", type=fraction, default=0.01, help="share of missed detections (default: %(default)s)")
    g.add_argument("--swap-rate", type=fraction, default=0.005,
                   help="left/right swap probability per pair, camera and frame (default: %(default)s)")
    g.add_argument("--no-occlusion", action="store_true", help="no self-occlusion")
    g.add_argument("--body-only", action="store_true", help="a body detector: no spine keypoints (ids 26-36)")


def detector_config(args):
    from simspine.synth.detector import DetectorConfig

    return DetectorConfig(noise_px=args.noise_px, outlier_rate=args.outlier_rate, miss_rate=args.miss_rate,
                          swap_rate=args.swap_rate, occlusion=not args.no_occlusion, body_only=args.body_only)


def add_session_arguments(p, seconds: float = 4.0) -> None:
    from simspine.synth.motion import ACTIONS

    p.add_argument("--action", default="walking", choices=ACTIONS, help="action (default: %(default)s)")
    p.add_argument("--seconds", type=positive_float, default=seconds, help="duration in seconds (default: %(default)s)")
    p.add_argument("--fps", type=positive_float, default=50.0, help="frame rate in Hz (default: %(default)s)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--rig", default="h36m",
                   help="'h36m', 'h36m:S5' (a subject's cameras) or a calibration file (default: %(default)s)")
    p.add_argument("--height", type=positive_float, default=None, help="subject height in m (default: random 1.5-1.95)")
    p.add_argument("--jitter-mm", type=nonneg_float, default=10.0,
                   help="RMS marker-placement jitter of the generator's model in mm (default: %(default)s)")
    p.add_argument("--proportions", type=fraction_below_one, default=0.05,
                   help="per-segment proportion variation, +- fraction (default: %(default)s)")
    p.add_argument("--heading", type=float, default=None, help="facing direction in degrees (default: random)")


def synth_config(args):
    from simspine.synth.session import SynthConfig

    return SynthConfig(action=args.action, seconds=args.seconds, fps=args.fps, seed=args.seed, rig=args.rig,
                       height_m=args.height, proportion_spread=args.proportions, jitter_m=args.jitter_mm / 1000.0,
                       heading_deg=args.heading, detector=detector_config(args))


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output session folder")
    add_session_arguments(p)
    add_detector_arguments(p)


def run(args) -> int:
    from simspine.fileio import ensure_out_dir
    from simspine.synth.session import synthesize

    ensure_out_dir(args.out)
    marker = Path(args.out) / "synth.json"
    before = marker.stat().st_mtime_ns if marker.is_file() else None
    t0 = time.perf_counter()
    s = synthesize(args.out, synth_config(args))
    d = s.detections
    # synthesize() leaves an identical complete session alone (resume); say which happened
    verb = "kept identical session" if before is not None and marker.stat().st_mtime_ns == before else "wrote"
    print(f"{verb} {args.out}: {s.truth.keypoints.n_frames} frames x {len(s.rig.cameras)} cameras ({s.rig.name}), "
          f"action {args.action}, subject {s.truth.subject.height_m:.2f} m, in {time.perf_counter() - t0:.1f} s")
    print(f"  2D: occluded {100 * d.occluded.mean():.1f}%, outliers {100 * d.outlier.mean():.1f}%, "
          f"not reported {100 * d.missed.mean():.1f}%, swapped {100 * d.swapped.mean():.2f}%")
    print(f"  ground truth (OpenSim ground, Y up): {args.out}/groundtruth/")
    return 0
