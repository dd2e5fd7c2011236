"""``simspine calibrate refine SESSION --out FILE.toml``: bundle adjustment of a session's rig."""

from __future__ import annotations

NAME = "calibrate"
HELP = "calibration tools: 'refine' adjusts a rig's extrinsics on the session's own keypoints"
DESCRIPTION = (
    "Calibration tools. 'simspine calibrate refine SESSION --out FILE.toml' refines the camera rotations "
    "and centres (and with --focal the focal lengths) by bundle adjustment on the session's own confident "
    "keypoints: robust loss in pixels, one camera held fixed (the world frame stays the calibration's), "
    "the distance between it and a second camera kept (the scale stays the calibration's). Prints the "
    "reprojection error per camera before and after and writes a Pose2Sim calibration TOML."
)


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="calibrate_command", metavar="ACTION", required=True)
    r = sub.add_parser("refine", help="bundle adjustment of the extrinsics on the session's keypoints",
                       description=DESCRIPTION, allow_abbrev=False)
    add_refine_arguments(r)
    r.add_argument("session", metavar="SESSION", help="Pose2Sim project folder or simspine session .npz")
    r.add_argument("--out", required=True, metavar="FILE.toml", help="refined calibration (Pose2Sim TOML)")
    r.add_argument("--calibration", default=None, help="calibration file to start from instead of SESSION/calibration/")
    r.add_argument("--fps", type=float, default=None, help="frame rate (only recorded; default: the session's)")
    r.set_defaults(_calibrate_run=run_refine)


def add_refine_arguments(p, prefix: str = "") -> None:
    """Options of the refinement (``prefix`` for use inside another command)."""
    from simspine.multiview.calibration_refine import LOSSES, RefineOptions

    d = RefineOptions()
    g = p.add_argument_group("calibration refinement")
    g.add_argument(f"--{prefix}focal", action="store_true", help="also refine each camera's focal length")
    g.add_argument(f"--{prefix}fixed", default=None, metavar="CAMERA",
                   help="camera held fixed (default: the one that agrees best with the others)")
    g.add_argument(f"--{prefix}min-conf", type=float, default=d.min_conf,
                   help="use 2D keypoints at or above this confidence (default: %(default)s)")
    g.add_argument(f"--{prefix}max-points", type=int, default=d.max_points,
                   help="about this many triangulated keypoints, from evenly spaced frames (default: %(default)s)")
    g.add_argument(f"--{prefix}loss", choices=LOSSES, default=d.loss, help="robust loss (default: %(default)s)")
    g.add_argument(f"--{prefix}f-scale", type=float, default=d.f_scale_px,
                   help="scale of the robust loss, px (default: %(default)s)")
    g.add_argument(f"--{prefix}centre-sigma", type=float, default=d.centre_sigma_m,
                   help="prior on camera centres, m per coordinate; 0 frees them (default: %(default)s)")


def refine_options(args, prefix: str = ""):
    from simspine.multiview.calibration_refine import RefineOptions

    def a(name):
        return getattr(args, (prefix + name).replace("-", "_"))

    for name in ("min-conf", "f-scale", "max-points"):
        if a(name) is None or a(name) < 0 or (name != "min-conf" and a(name) == 0):
            from simspine.errors import InputError
            raise InputError(None, f"--{prefix}{name} must be positive")
    return RefineOptions(min_conf=a("min-conf"), max_points=a("max-points"), loss=a("loss"), f_scale_px=a("f-scale"),
                         refine_focal=a("focal"), fixed_camera=a("fixed"), centre_sigma_m=a("centre-sigma") or None)


def run(args) -> int:
    return int(args._calibrate_run(args) or 0)


def run_refine(args) -> int:
    from simspine.io.session import load_session
    from simspine.multiview.calibration_refine import format_refinement, refine_calibration, write_refined

    opts = refine_options(args)
    session = load_session(args.session, args.calibration, args.fps)
    print(f"session: {session.n_cameras} cameras ({', '.join(session.camera_names)}), {session.n_frames} frames, "
          f"{len(session.keypoint_names)} keypoints")
    res = refine_calibration(session, opts, log=print)
    print(format_refinement(res))
    path = write_refined(args.out, res, session)
    print(f"\nwrote {path}; use it with --calibration {path}")
    return 0
