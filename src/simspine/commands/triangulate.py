"""``simspine triangulate SESSION --out DIR``: robust triangulation of a multi-view session."""

from __future__ import annotations

import time

NAME = "triangulate"
HELP = "triangulate a Pose2Sim-style session (calibration + OpenPose JSON per camera) into a TRC and a quality report"
DESCRIPTION = (
    "Robustly triangulate the 2D keypoints of a session: a Pose2Sim project folder (calibration/*.toml or "
    "a Qualisys .qca.txt, pose/<camera>_json/ with OpenPose JSON per frame) or a simspine session .npz. "
    "Writes DIR/triangulated.trc (metres, OpenSim ground frame Y up: the calibration's Z-up world mapped "
    "by (x, y, z) -> (y, z, x), as Pose2Sim does), DIR/triangulated.npz (also confidences, reprojection "
    "errors and views used) and DIR/triangulated_report.json, and prints the quality report: "
    "reprojection error per keypoint in px and mm and the share of observations each camera was "
    "excluded from."
)


def add_triangulation_arguments(p) -> None:
    """Options shared with ``simspine annotate``."""
    from simspine.commands._args import fraction, nonneg_int, positive_float
    from simspine.multiview.triangulation import TriangulationOptions

    d = TriangulationOptions()
    g = p.add_argument_group("triangulation")
    g.add_argument("--calibration", default=None, help="calibration file to use instead of SESSION/calibration/")
    g.add_argument("--fps", type=positive_float, default=None,
                   help="frame rate of the keypoint files, Hz > 0 (default: [project] frame_rate of Config.toml, "
                        "else the cameras' videos; required when neither gives one)")
    g.add_argument("--conf-threshold", type=fraction, default=d.conf_threshold,
                   help="ignore 2D points under this confidence (default: %(default)s)")
    g.add_argument("--reproj-threshold", type=positive_float, default=d.reproj_threshold_px,
                   help="drop views whose reprojection error exceeds this, px (default: %(default)s)")
    g.add_argument("--huber", type=positive_float, default=d.huber_delta_px,
                   help="Huber threshold of the refinement, px (default: %(default)s)")
    g.add_argument("--no-consistency", action="store_true", help="skip the pair-hypothesis consistency step")
    g.add_argument("--person", type=nonneg_int, default=0,
                   help="which subject when the keypoint files hold several people: 0 (default) is the person "
                        "nearest the centre of the capture volume in the first frame where two or more cameras "
                        "see them, 1 the next nearest...; each camera's person per frame is then the one that "
                        "agrees with the other cameras and with the subject's previous frames")
    g.add_argument("--no-swap-fix", action="store_true",
                   help="keep each camera's left/right labels as detected (default: a view whose sides are swapped "
                        "over a run of frames is relabelled to agree with the other cameras)")


def triangulation_options(args):
    from simspine.multiview.triangulation import TriangulationOptions

    return TriangulationOptions(conf_threshold=args.conf_threshold, reproj_threshold_px=args.reproj_threshold,
                                huber_delta_px=args.huber, consistency=not args.no_consistency,
                                swap_fix=not args.no_swap_fix)


def add_arguments(p) -> None:
    p.add_argument("session", metavar="SESSION", help="Pose2Sim project folder or simspine session .npz")
    p.add_argument("--out", required=True, help="output folder")
    add_triangulation_arguments(p)


def run(args) -> int:
    from simspine.fileio import ensure_out_dir
    from simspine.multiview.reconstruct import (
        format_report,
        require_points,
        triangulate_session,
        write_triangulation,
    )

    ensure_out_dir(args.out)
    t0 = time.perf_counter()
    from simspine.io.session import load_session

    session = load_session(args.session, args.calibration, args.fps, args.person)
    t1 = time.perf_counter()
    print(f"session: {session.n_cameras} cameras ({', '.join(session.camera_names)}), {session.n_frames} frames, "
          f"{len(session.keypoint_names)} keypoints ({session.skeleton}), {session.fps:g} fps"
          + (f" ({session.meta['fps_source']})" if session.meta.get("fps_source") else "")
          + f"; read in {t1 - t0:.2f} s")
    people = session.meta.get("people", {})
    if people.get("frames_with_several_people"):
        a = people["association"]
        print(f"several people in {people['frames_with_several_people']} frames: person {people['person']} "
              f"followed from frame {a['start_frame']} ({a['people_at_start']} people there), in "
              f"{a['frames_with_subject']} frames, {a['views_without_subject']} views with people but not the subject")
    rec = triangulate_session(session, triangulation_options(args))
    require_points(session, rec, triangulation_options(args))
    t2 = time.perf_counter()
    n = session.n_frames * len(session.keypoint_names)
    print(f"triangulated {n} points in {t2 - t1:.2f} s ({n / max(t2 - t1, 1e-9):.0f} points/s)\n")
    if people:
        rec.report["people"] = people
    paths = write_triangulation(rec, args.out)
    print(format_report(rec.report))
    print("\nwrote " + ", ".join(str(v) for v in paths.values()) + " (TRC in OpenSim's Y-up frame)")
    return 0
