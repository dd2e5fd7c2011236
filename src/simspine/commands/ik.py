"""``simspine ik MARKERS.trc --out DIR``: scale the spine model to a trial, solve IK, write keypoints."""

from __future__ import annotations

NAME = "ik"
HELP = "scale the spine-aware OpenSim model to a marker trial, run inverse kinematics, write 37 keypoints and spine rotations"
DESCRIPTION = (
    "Reads MARKERS.trc (OpenSim ground frame, Y up; SpineTrack-37 marker names), scales the stripped "
    "Pose2Sim spine model to it (per-segment factors from marker pairs, OpenSim ScaleTool), solves inverse "
    "kinematics frame by frame and writes to DIR: model_scaled.osim, scaling.json, ik.mot (degrees), "
    "ik_errors.csv (per-frame marker RMS/max, m), keypoints37.trc (37 keypoints from the model, m), "
    "rotations.csv/.npz (intervertebral angles and vertebral-body orientations relative to the pelvis, deg) "
    "and summary.json. Any marker subset that places the pelvis and trunk (3 non-collinear markers) works: "
    "segments without marker pairs are scaled from the other side, --height or their neighbours, and "
    "coordinates no marker moves are held at a neutral pose (listed in summary.json and the .mot header). "
    "Re-running on the same input reuses finished stages."
)


def add_arguments(p) -> None:
    from simspine.commands._args import nonneg_float, positive_float

    p.add_argument("markers", help="marker trajectories (.trc, SpineTrack-37 names, OpenSim frame)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--height", type=positive_float, default=None,
                   help="subject height in metres (checked against the marker-based estimate)")
    p.add_argument("--mass", type=positive_float, default=70.0, help="subject mass in kg (default: %(default)s)")
    p.add_argument("--backend", choices=["jacobian", "opensim"], default="jacobian",
                   help="IK engine: Gauss-Newton on OpenSim Jacobians (default) or OpenSim's IK solver")
    p.add_argument("--accuracy", type=positive_float, default=None,
                   help="IK accuracy (jacobian: step tolerance, default 1e-6; opensim: solver accuracy, default 1e-5)")
    p.add_argument("--smoothness", type=nonneg_float, default=0.1,
                   help="weight of the IK's temporal smoothness (acceleration) term at 50 Hz, scaled with the "
                        "frame rate; 0 = frame-by-frame IK as OpenSim's (default: %(default)s; jacobian backend)")
    p.add_argument("--spine-placement", choices=["published", "body_centroid"], default="published",
                   help="virtual spine markers at the SimSpine release's offsets (default) or moved to "
                        "vertebral-body centroids")
    p.add_argument("--free-lumbar", action="store_true",
                   help="drop the lumbar coupler constraints (18 free lumbar coordinates instead of 3; "
                        "slower and only weakly determined by the markers)")
    p.add_argument("--strict", action="store_true",
                   help="refuse left/right scale factors that differ by more than 15%% (default: warn, name the "
                        "marker pairs and use one symmetric factor)")
    p.add_argument("--no-resume", action="store_true", help="recompute every stage even if outputs exist")


def run(args) -> int:
    from simspine.biomech.pipeline import run_ik_pipeline
    from simspine.fileio import ensure_out_dir

    ensure_out_dir(args.out)
    run_ik_pipeline(args.markers, args.out, height=args.height, mass=args.mass, backend=args.backend,
                    accuracy=args.accuracy, resume=not args.no_resume, progress=True,
                    spine_placement=args.spine_placement, lumbar_coupling=not args.free_lumbar,
                    smoothness=args.smoothness if args.backend == "jacobian" else 0.0, strict=args.strict)
    return 0
