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
    "A lab's own markers: --marker-set FILE (OpenSim MarkerSet XML, or 'trunk' for the shipped trunk protocol) "
    "adds them to the model for scaling and IK; the 37 keypoints still come from FK. OpenSim-style options: "
    "--static, --scale-factors, --exclude-markers, --marker-weights. "
    "Re-running on the same input reuses finished stages."
)


def add_arguments(p) -> None:
    from simspine.commands._args import nonneg_float, positive_float

    p.add_argument("markers", help="marker trajectories (.trc, SpineTrack-37 names, OpenSim frame)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--height", type=positive_float, default=None,
                   help="subject height in metres (checked against the marker-based estimate)")
    p.add_argument("--mass", type=positive_float, default=70.0, help="subject mass in kg (default: %(default)s)")
    p.add_argument("--backend", "--ik-backend", dest="backend", choices=["jacobian", "opensim", "batched"],
                   default="jacobian",
                   help="IK engine: Gauss-Newton on OpenSim Jacobians (default), OpenSim's IK solver, or the batched "
                        "PyTorch trajectory solver (many frames per array operation)")
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
    add_marker_arguments(p)


def add_marker_arguments(p) -> None:
    """The lab-marker options shared by ``ik`` and ``annotate`` (see :func:`marker_options`)."""
    g = p.add_argument_group("lab markers and OpenSim-style options")
    g.add_argument("--marker-set", metavar="FILE|NAME", default=None,
                   help="an OpenSim MarkerSet XML (marker name, socket_parent_frame body, location in m) whose "
                        "markers drive scaling and IK, or a shipped protocol name: trunk (ASIS/PSIS, C7, T10, "
                        "jugular notch, xiphoid, clavicles, acromia, lateral epicondyles, wrist styloids)")
    g.add_argument("--measurement-set", metavar="FILE", default=None,
                   help="an OpenSim ScaleTool setup (or any XML) whose MeasurementSet gives the marker pairs per "
                        "segment for --marker-set (default: pairs derived from markers on the same or adjacent "
                        "bodies)")
    g.add_argument("--static", metavar="TRC", default=None,
                   help="scale on this static trial instead of the motion trial")
    g.add_argument("--no-register-markers", action="store_true",
                   help="keep the scaled (or static-placed) model's marker placements: no per-trial registration")
    g.add_argument("--scale-factors", metavar="FILE", default=None,
                   help="given scale factors, no estimation: JSON {segment: factor} (or a scaling.json) or an "
                        "OpenSim ScaleSet XML")
    g.add_argument("--exclude-markers", metavar="A,B,...", default=None,
                   help="markers of the trial to leave out of scaling and IK (comma-separated)")
    g.add_argument("--marker-weights", metavar="FILE", default=None,
                   help="IK marker weights: JSON {name: weight}, CSV name,weight or an OpenSim IKTaskSet XML "
                        "(apply=false leaves a marker out)")


def marker_options(args) -> dict:
    """The lab-marker options of ``args`` as keyword arguments of ``run_ik_pipeline`` (given ones only)."""
    keys = ("marker_set", "measurement_set", "static", "scale_factors", "exclude_markers", "marker_weights")
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if getattr(args, "no_register_markers", False):
        out["register_markers"] = False
    return out


def run(args) -> int:
    from simspine.biomech.fitting import run_ik_pipeline
    from simspine.fileio import ensure_out_dir

    ensure_out_dir(args.out)
    run_ik_pipeline(args.markers, args.out, height=args.height, mass=args.mass, backend=args.backend,
                    accuracy=args.accuracy, resume=not args.no_resume, progress=True,
                    spine_placement=args.spine_placement, lumbar_coupling=not args.free_lumbar,
                    smoothness=args.smoothness if args.backend in ("jacobian", "batched") else 0.0, strict=args.strict,
                    **marker_options(args))
    return 0
