"""``simspine annotate SESSION --out DIR``: the whole pipeline on a multi-view session."""

from __future__ import annotations

NAME = "annotate"
HELP = "triangulate -> filter -> merge -> scale -> IK -> FK on a session; everything in one folder, resumable"
DESCRIPTION = (
    "Run the SimSpine pipeline on a Pose2Sim-style session (calibration + OpenPose JSON per camera) or a "
    "simspine session .npz: robust triangulation, zero-phase filtering, merge with trusted body markers "
    "(--trusted: a TRC, or Human3.6M joints as .npy/.npz), subject scaling, inverse kinematics and forward "
    "kinematics (SpineTrack-37 keypoints and per-vertebra rotations). Everything goes into --out with "
    "summary.txt/summary.json; positions are metres in OpenSim's ground frame (Y up). Re-running skips "
    "the stages whose outputs are up to date (stages.json); --no-resume recomputes everything. "
    "keypoints37_status.csv says per frame whether each keypoint was observed (triangulated), filled or "
    "inferred by the model; report.html shows the run offline. --batch DIR runs every session (sub-folder with "
    "pose/ or a calibration folder) of DIR on Dask (--workers N local processes, or --scheduler ADDRESS) into "
    "--out/<session>/, skipping finished sessions, recording failed ones, and prints a summary table (exit 1 "
    "when a session failed)."
)


def add_arguments(p) -> None:
    from simspine.commands._args import fraction, nonneg_float, nonneg_int, positive_float, positive_int
    from simspine.commands.triangulate import add_triangulation_arguments
    from simspine.multiview.filtering import FilterOptions
    from simspine.multiview.merge import MergeOptions

    p.add_argument("session", metavar="SESSION", nargs="?", help="Pose2Sim project folder or simspine session .npz")
    p.add_argument("--out", required=True, help="output folder (with --batch: one sub-folder per session)")
    g = p.add_argument_group("batch")
    g.add_argument("--batch", metavar="DIR", default=None,
                   help="annotate every session of DIR (sub-folders with pose/ or a calibration folder; DIR's "
                        "calibration for those without one) on Dask, into OUT/<session>/; resumable")
    from simspine.scheduling import add_cluster_arguments

    add_cluster_arguments(g, "sessions (with --batch)")
    add_triangulation_arguments(p)
    f, m = FilterOptions(), MergeOptions()
    g = p.add_argument_group("filtering")
    g.add_argument("--cutoff", type=nonneg_float, default=f.cutoff_hz,
                   help="Butterworth cutoff in Hz, 0 for none (default: %(default)s; gain 0.5 there, zero phase)")
    g.add_argument("--order", type=positive_int, default=f.order, help="Butterworth order per pass (default: %(default)s)")
    g.add_argument("--max-gap", type=nonneg_int, default=f.max_gap, help="longest gap filled, frames (default: %(default)s)")
    g.add_argument("--hampel", action="store_true", help="remove spikes with a Hampel filter first")
    g = p.add_argument_group("merge")
    g.add_argument("--trusted", default=None, help="trusted body markers: .trc, or Human3.6M joints .npy/.npz")
    g.add_argument("--trusted-rate", type=positive_float, default=50.0, help="rate of .npy/.npz joints, Hz (default: %(default)s)")
    g.add_argument("--trusted-units", choices=("mm", "m"), default="mm", help="units of .npy/.npz joints (default: mm)")
    g.add_argument("--pseudo-conf", type=fraction, default=m.pseudo_conf,
                   help="confidence of triangulated keypoints relative to trusted markers (default: %(default)s)")
    g = p.add_argument_group("model")
    g.add_argument("--mass", type=positive_float, default=70.0, help="subject mass in kg (default: %(default)s)")
    g.add_argument("--height", type=positive_float, default=None, help="subject height in m, if known")
    g.add_argument("--ik-backend", choices=["jacobian", "opensim", "batched"], default="jacobian",
                   help="IK backend: jacobian, opensim or batched (PyTorch, many frames at once) (default: %(default)s)")
    g.add_argument("--strict", action="store_true",
                   help="refuse left/right scale factors that differ by more than 15%% (default: warn and use one "
                        "symmetric factor)")
    g.add_argument("--front-end-only", action="store_true", help="stop after the merge (no scaling/IK/FK)")
    g.add_argument("--fill-unobserved", action="store_true",
                   help="keep the model's keypoints and rotations in frames with fewer than 3 pelvis/trunk markers "
                        "(default: NaN there; keypoints37_status.csv says which frames)")
    from simspine.commands.ik import add_marker_arguments

    add_marker_arguments(p)
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--refine-calibration", action="store_true",
                   help="first refine the calibration by bundle adjustment on the session's keypoints (as "
                        "'simspine calibrate refine'; written to calibration_refined.toml) and use it")
    p.add_argument("--no-resume", action="store_true", help="recompute every stage")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from simspine.annotate import annotate, format_summary
    from simspine.commands.ik import marker_options
    from simspine.commands.triangulate import triangulation_options
    from simspine.errors import SimspineError
    from simspine.fileio import ensure_out_dir
    from simspine.multiview.filtering import FilterOptions
    from simspine.multiview.merge import MergeOptions

    if (args.batch is None) == (args.session is None):
        raise SimspineError("give either SESSION or --batch DIR")
    if args.batch is None and (args.workers or args.scheduler):
        raise SimspineError("--workers and --scheduler go with --batch DIR")
    if args.batch is not None and args.no_resume:
        raise SimspineError("--no-resume does not go with --batch (delete OUT/<session>/ to recompute a session)")
    ensure_out_dir(args.out)
    options = dict(trusted=args.trusted, trusted_rate_hz=args.trusted_rate,
                   trusted_units=args.trusted_units, fps=args.fps,
                   person=args.person, triangulation=triangulation_options(args),
                   filtering=FilterOptions(cutoff_hz=args.cutoff or None, order=args.order, max_gap=args.max_gap,
                                           hampel=args.hampel),
                   merge=MergeOptions(pseudo_conf=args.pseudo_conf), biomech=not args.front_end_only,
                   mass=args.mass, height=args.height, ik_backend=args.ik_backend,
                   ik_options={**({"strict": True} if args.strict else {}), **marker_options(args)} or None,
                   fill_unobserved=args.fill_unobserved, report=not args.no_report,
                   refine_calibration=args.refine_calibration)
    if args.batch is not None:
        from simspine.batch import annotate_batch

        summary = annotate_batch(args.batch, args.out, workers=args.workers, scheduler=args.scheduler,
                                 calibration=args.calibration, progress=not args.quiet, **options)
        print()
        print(summary.text())
        return 1 if summary.failed else 0
    res = annotate(args.session, args.out, calibration=args.calibration, resume=not args.no_resume,
                   progress=not args.quiet, **options)
    print()
    print(format_summary(res.summary))
    return 0
