"""``simspine bench real [SESSION]``: simspine's and Pose2Sim's triangulation of the same real 2D.

Both tools triangulate the same 2D keypoints: the session as :func:`simspine.io.session.load_session`
reads it (frame alignment, person choice and all), triangulated by
:func:`simspine.multiview.reconstruct.triangulate_session` with its default options and by Pose2Sim's
``triangulate_all`` on a HALPE_26 copy of the same arrays (see
:mod:`simspine.bench.pose2sim_runner`; settings: its Config.toml defaults — single person, all
frames, no undistortion, no left/right swap handling, likelihood threshold 0.3, reprojection error
threshold 15 px (both as simspine's), at least 2 cameras — except that its gap interpolation and
gap filling are off, so that both raw triangulations are compared; ``--pose2sim-gap-filling``
restores them). Every figure is then computed by the same code from each tool's 3D points (Y up,
metres) and the cameras:

* **body points**: the 22 points of Pose2Sim's HALPE_26 tree (nose, head, neck, shoulders,
  elbows, wrists, hips and pelvis centre, knees, ankles, big and small toes, heels) that the
  session holds; simspine's other keypoints (eyes, ears, spine) are left out of every figure.
* **detected**: a body keypoint in a frame is detected when at least two cameras report it with
  confidence >= 0.3 (one view cannot be triangulated). **Reconstructed share** = detected
  keypoint-frames with a finite 3D point / detected keypoint-frames.
* **reprojection error** (px): the 3D point projected with each camera's full model (distortion
  included) vs. that camera's 2D detection, for every detection with confidence >= 0.3 whose 3D
  point exists — also in views a tool left out, so both are measured on the same views. Median
  per camera and over all cameras; also over the keypoint-frames both tools reconstructed.
* **limb-length variation** (mm): the standard deviation over frames (population SD, frames where
  both ends exist) of each limb's 3D length, for the upper arms (shoulder-elbow), forearms
  (elbow-wrist), thighs (hip-knee), shanks (knee-ankle), shoulder width and hip width; the
  headline is the mean over the limbs measured. A rigid body gives 0.
* **jitter** (mm/frame²): the root mean square of the norm of the second difference
  ``x[t+1] - 2 x[t] + x[t-1]`` of each body point's position, over all points and all frame
  triplets where the three positions exist. Constant-velocity motion gives 0.
* **triangulation time** (s, wall clock): ``triangulate_session``, and Pose2Sim's ``triangulate_all``
  alone (its project folder is written beforehand, untimed).

Targets (issue 8): >= 90% of the detected body keypoint-frames reconstructed by simspine; its
median reprojection error <= Pose2Sim's (overall and per camera); its limb-length variation <=
half of Pose2Sim's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from simspine.bench.table import format_table
from simspine.errors import InputError

NAME = "real"
HELP = "simspine vs Pose2Sim triangulation on a real session's 2D: reconstructed share, reprojection, limb lengths, jitter"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP

#: (label, end a, end b) of the limbs whose length variation is measured (HALPE_26 names).
LIMBS = (
    ("upper arm R", "RShoulder", "RElbow"), ("upper arm L", "LShoulder", "LElbow"),
    ("forearm R", "RElbow", "RWrist"), ("forearm L", "LElbow", "LWrist"),
    ("thigh R", "RHip", "RKnee"), ("thigh L", "LHip", "LKnee"),
    ("shank R", "RKnee", "RAnkle"), ("shank L", "LKnee", "LAnkle"),
    ("shoulder width", "LShoulder", "RShoulder"), ("hip width", "LHip", "RHip"),
)
CONF_THRESHOLD = 0.3
DEMO = "Demo_SinglePerson"


# ---- metrics (pure functions, arrays in metres / pixels) ---------------------------------------
def detected_mask(conf: np.ndarray, uv: np.ndarray, threshold: float = CONF_THRESHOLD, min_views: int = 2) -> np.ndarray:
    """(T, K) bool: the keypoint is reported with confidence >= ``threshold`` by >= ``min_views``
    cameras. ``conf`` (C, T, K), ``uv`` (C, T, K, 2)."""
    ok = np.isfinite(uv).all(-1) & (np.nan_to_num(conf) >= threshold)
    return ok.sum(0) >= min_views


def reconstructed_share(xyz: np.ndarray, detected: np.ndarray) -> float:
    """Share of the detected (T, K) keypoint-frames whose 3D point (T, K, 3) is finite."""
    n = int(detected.sum())
    if n == 0:
        return float("nan")
    return float((np.isfinite(xyz).all(-1) & detected).sum() / n)


def reprojection_errors(cameras, xyz_world: np.ndarray, uv: np.ndarray, conf: np.ndarray,
                        threshold: float = CONF_THRESHOLD) -> np.ndarray:
    """(C, T, K) pixel distance between each camera's projection of the 3D points (T, K, 3), in the
    calibration's world frame, and its 2D detections (C, T, K, 2); NaN where the point or a
    detection with confidence >= ``threshold`` is missing."""
    out = np.full(uv.shape[:3], np.nan)
    finite = np.isfinite(xyz_world).all(-1)
    for c, cam in enumerate(cameras):
        ok = finite & np.isfinite(uv[c]).all(-1) & (np.nan_to_num(conf[c]) >= threshold)
        if not ok.any():
            continue
        # points behind the camera project to nonsense; measure only those in front
        ok &= np.where(finite, cam.world_to_camera(np.nan_to_num(xyz_world))[..., 2], -1.0) > 0
        proj = cam.project(xyz_world[ok])
        out[c][ok] = np.linalg.norm(proj - uv[c][ok], axis=-1)
    return out


def median_or_nan(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def limb_length_sd(xyz: np.ndarray, names: list[str], limbs=LIMBS, min_frames: int = 2) -> dict[str, float]:
    """Per limb: SD over frames (population, ddof=0) of its 3D length in mm; NaN when it is
    measured in fewer than ``min_frames`` frames or an end is not among ``names``."""
    idx = {n: i for i, n in enumerate(names)}
    out = {}
    for label, a, b in limbs:
        if a not in idx or b not in idx:
            out[label] = float("nan")
            continue
        d = np.linalg.norm(xyz[:, idx[a]] - xyz[:, idx[b]], axis=-1) * 1000.0
        d = d[np.isfinite(d)]
        out[label] = float(np.std(d)) if d.size >= min_frames else float("nan")
    return out


def mean_limb_sd(per_limb: dict[str, float]) -> float:
    v = np.array([x for x in per_limb.values() if np.isfinite(x)])
    return float(v.mean()) if v.size else float("nan")


def jitter_rms(xyz: np.ndarray) -> float:
    """RMS over points and frame triplets of ``|x[t+1] - 2 x[t] + x[t-1]|`` in mm/frame² (positions
    (T, K, 3) in metres; triplets with a missing position are left out)."""
    if xyz.shape[0] < 3:
        return float("nan")
    acc = xyz[2:] - 2 * xyz[1:-1] + xyz[:-2]
    n = np.linalg.norm(acc, axis=-1) * 1000.0
    n = n[np.isfinite(n)]
    return float(np.sqrt(np.mean(n ** 2))) if n.size else float("nan")


def tool_figures(cameras, xyz_yup: np.ndarray, names: list[str], uv: np.ndarray, conf: np.ndarray,
                 threshold: float = CONF_THRESHOLD) -> dict:
    """Every figure of one tool from its body points (T, M, 3, Y up, metres; ``names`` M) and the
    2D detections of the same points (C, T, M, 2) / (C, T, M)."""
    from simspine.frames import yup_to_zup

    det = detected_mask(conf, uv, threshold)
    err = reprojection_errors(cameras, yup_to_zup(xyz_yup), uv, conf, threshold)
    limbs = limb_length_sd(xyz_yup, names)
    return {
        "detected_keypoint_frames": int(det.sum()),
        "reconstructed_keypoint_frames": int((np.isfinite(xyz_yup).all(-1) & det).sum()),
        "reconstructed_share": reconstructed_share(xyz_yup, det),
        "reproj_median_px": median_or_nan(err),
        "reproj_median_px_per_camera": {cam.name: median_or_nan(err[c]) for c, cam in enumerate(cameras)},
        "reproj_observations_per_camera": {cam.name: int(np.isfinite(err[c]).sum()) for c, cam in enumerate(cameras)},
        "limb_length_sd_mm": limbs,
        "limb_length_sd_mean_mm": mean_limb_sd(limbs),
        "jitter_rms_mm_per_frame2": jitter_rms(xyz_yup),
    }


# ---- session -----------------------------------------------------------------------------------
def _cache_dir() -> Path:
    if os.environ.get("SIMSPINE_CACHE"):
        return Path(os.environ["SIMSPINE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simspine"


def default_session() -> Path:
    """A copy of Pose2Sim's ``Demo_SinglePerson`` (Config.toml, Calib.qca.txt, videos) in simspine's
    cache folder, made on first use; its 2D comes from ``simspine detect``."""
    import Pose2Sim

    src = Path(Pose2Sim.__file__).parent / DEMO
    dst = _cache_dir() / DEMO
    if not (dst / "Config.toml").is_file():
        if not src.is_dir():
            raise InputError(src, "Pose2Sim's demo session is not installed; give a SESSION folder")
        tmp = dst.with_name(dst.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "calibration").mkdir(parents=True)
        for q in (src / "calibration").glob("*.qca.txt"):
            shutil.copy2(q, tmp / "calibration" / q.name)
        shutil.copytree(src / "videos", tmp / "videos")
        shutil.copy2(src / "Config.toml", tmp / "Config.toml")
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    return dst


def has_pose(path: Path) -> bool:
    from simspine.io.session import POSE_DIRS

    return path.is_file() or any((path / d).is_dir() for d in POSE_DIRS)


def body_columns(names: list[str]) -> tuple[list[str], list[int]]:
    """The HALPE_26 tree points (Pose2Sim's TRC order) among ``names`` (case-insensitive): their
    names as Pose2Sim writes them and their indices in ``names``."""
    from simspine.bench.pose2sim_runner import halpe26_points

    idx = {n.lower(): i for i, n in enumerate(names)}
    pts = [(n, idx[n.lower()]) for n, _ in halpe26_points() if n.lower() in idx]
    return [p[0] for p in pts], [p[1] for p in pts]


def _pick(traj, names: list[str]) -> np.ndarray:
    """(T, len(names), 3) of ``traj`` by name (case-insensitive); NaN for names it lacks."""
    idx = {n.lower(): i for i, n in enumerate(traj.names)}
    out = np.full((traj.n_frames, len(names), 3), np.nan)
    for j, n in enumerate(names):
        if n.lower() in idx:
            out[:, j] = traj.xyz[:, idx[n.lower()]]
    return out


# ---- command -----------------------------------------------------------------------------------
def add_arguments(p) -> None:
    p.add_argument("session", nargs="?", default=None,
                   help="Pose2Sim-style session folder with pose/<camera>_json/ (or a session .npz); default: "
                        f"a copy of Pose2Sim's {DEMO} in simspine's cache folder")
    p.add_argument("--out", default=None, help="folder to write bench_real.json into")
    p.add_argument("--pose2sim-gap-filling", action="store_true",
                   help="let Pose2Sim interpolate gaps < 20 frames and fill larger ones with the last value "
                        "(its Config.toml default; off by default to compare raw triangulations)")
    from simspine.commands._args import positive_float

    p.add_argument("--fps", type=positive_float, default=None,
                   help="frame rate, when the session does not give one")


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b != 0 else float("nan")


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def compare(session, pose2sim_settings: dict | None = None) -> dict:
    """Run both triangulations on ``session`` and compute every figure (the dict written as JSON)."""
    from simspine.bench.pose2sim_runner import DEFAULT_SETTINGS, run_pose2sim_triangulation
    from simspine.multiview.reconstruct import triangulate_session
    from simspine.multiview.triangulation import TriangulationOptions

    names, cols = body_columns(session.keypoint_names)
    if not names:
        raise InputError(session.meta.get("source"), f"no body point of HALPE_26 among the session's keypoints "
                                                     f"({session.skeleton}); cannot compare with Pose2Sim")
    opts = TriangulationOptions()
    t0 = time.perf_counter()
    rec = triangulate_session(session, opts)
    t_ours = time.perf_counter() - t0
    settings = pose2sim_settings or DEFAULT_SETTINGS
    p2s = run_pose2sim_triangulation(session, settings)
    t_p2s = p2s.meta["triangulate_all_s"]
    uv, conf = session.keypoints[:, :, cols], session.conf[:, :, cols]
    a, b = _pick(rec.markers, names), _pick(p2s.markers, names)
    ours = tool_figures(session.cameras, a, names, uv, conf)
    theirs = tool_figures(session.cameras, b, names, uv, conf)
    both = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)  # the same points for both tools
    from simspine.frames import yup_to_zup

    for fig, xyz in ((ours, a), (theirs, b)):
        err = reprojection_errors(session.cameras, yup_to_zup(np.where(both[..., None], xyz, np.nan)), uv, conf)
        fig["reproj_median_px_common"] = median_or_nan(err)
    ours["time_s"], theirs["time_s"] = t_ours, t_p2s
    share_ok = ours["reconstructed_share"] >= 0.9
    rep_ok = ours["reproj_median_px"] <= theirs["reproj_median_px"]
    rep_cam_ok = {c: ours["reproj_median_px_per_camera"][c] <= theirs["reproj_median_px_per_camera"][c]
                  for c in session.camera_names}
    limb_ok = ours["limb_length_sd_mean_mm"] <= 0.5 * theirs["limb_length_sd_mean_mm"]
    return {
        "session": session.meta.get("source", ""),
        "frames": session.n_frames, "fps": session.fps, "cameras": session.camera_names,
        "body_points": names,
        "body_points_detected": int(detected_mask(conf, uv).any(0).sum()),
        "limbs": [list(x) for x in LIMBS],
        "definitions": {
            "detected": f"body keypoint reported with confidence >= {CONF_THRESHOLD} by >= 2 cameras",
            "reproj_median_px": f"median px distance, projection (with distortion) vs detection, over detections "
                                f"with confidence >= {CONF_THRESHOLD} whose 3D point exists",
            "reproj_median_px_common": "the same, over the keypoint-frames both tools reconstructed",
            "limb_length_sd_mm": "population SD over frames of each limb's 3D length; mean over limbs measured",
            "jitter_rms_mm_per_frame2": "RMS of |x[t+1] - 2x[t] + x[t-1]| over body points and frame triplets",
        },
        "simspine": ours, "pose2sim": theirs,
        "simspine_options": {k: v for k, v in vars(opts).items()},
        "pose2sim_settings": p2s.settings,
        "targets": {
            "reconstructed_share_ge_0.9": share_ok,
            "reproj_median_le_pose2sim": rep_ok,
            "reproj_median_le_pose2sim_per_camera": rep_cam_ok,
            "limb_length_sd_le_half_pose2sim": limb_ok,
        },
    }


def format_result(r: dict) -> str:
    s, p, t = r["simspine"], r["pose2sim"], r["targets"]
    rows = [
        ["detected body keypoint-frames", s["detected_keypoint_frames"], p["detected_keypoint_frames"], "", "", ""],
        ["reconstructed %", 100 * s["reconstructed_share"], 100 * p["reconstructed_share"],
         _ratio(s["reconstructed_share"], p["reconstructed_share"]), "simspine >= 90%",
         _pf(t["reconstructed_share_ge_0.9"])],
        ["median reprojection error px", s["reproj_median_px"], p["reproj_median_px"],
         _ratio(s["reproj_median_px"], p["reproj_median_px"]), "ratio <= 1", _pf(t["reproj_median_le_pose2sim"])],
        ["  same points (both reconstructed)", s["reproj_median_px_common"], p["reproj_median_px_common"],
         _ratio(s["reproj_median_px_common"], p["reproj_median_px_common"]), "", ""],
        ["limb-length SD mm (mean of limbs)", s["limb_length_sd_mean_mm"], p["limb_length_sd_mean_mm"],
         _ratio(s["limb_length_sd_mean_mm"], p["limb_length_sd_mean_mm"]), "ratio <= 0.5",
         _pf(t["limb_length_sd_le_half_pose2sim"])],
        ["jitter RMS mm/frame^2", s["jitter_rms_mm_per_frame2"], p["jitter_rms_mm_per_frame2"],
         _ratio(s["jitter_rms_mm_per_frame2"], p["jitter_rms_mm_per_frame2"]), "", ""],
        ["triangulation time s", s["time_s"], p["time_s"], _ratio(s["time_s"], p["time_s"]), "", ""],
    ]
    main = format_table(["metric", "simspine", "Pose2Sim", "ratio", "target", "result"], rows, floatfmt=".3g")
    cams = format_table(
        ["camera", "simspine px", "Pose2Sim px", "ratio", "detections simspine", "detections Pose2Sim", "result"],
        [[c, s["reproj_median_px_per_camera"][c], p["reproj_median_px_per_camera"][c],
          _ratio(s["reproj_median_px_per_camera"][c], p["reproj_median_px_per_camera"][c]),
          s["reproj_observations_per_camera"][c], p["reproj_observations_per_camera"][c],
          _pf(t["reproj_median_le_pose2sim_per_camera"][c])] for c in r["cameras"]], floatfmt=".3g")
    limbs = format_table(["limb", "simspine SD mm", "Pose2Sim SD mm", "ratio"],
                         [[k, v, p["limb_length_sd_mm"][k], _ratio(v, p["limb_length_sd_mm"][k])]
                          for k, v in s["limb_length_sd_mm"].items()], floatfmt=".3g")
    tri = r["pose2sim_settings"]["triangulation"]
    head = (f"{r['session']}: {r['frames']} frames at {r['fps']:g} fps, cameras {', '.join(r['cameras'])}; "
            f"{len(r['body_points'])} body points ({', '.join(r['body_points'])}), {r['body_points_detected']} of "
            f"them detected\n"
            f"Pose2Sim settings: single person, all frames, likelihood >= "
            f"{tri['likelihood_threshold_triangulation']}, reprojection error <= "
            f"{tri['reproj_error_threshold_triangulation']} px, >= {tri['min_cameras_for_triangulation']} cameras, "
            f"undistort_points={tri['undistort_points']}, handle_LR_swap={tri['handle_LR_swap']}, "
            f"interpolation={tri['interpolation']!r}, fill_large_gaps_with={tri['fill_large_gaps_with']!r}; "
            f"simspine: default triangulation options")
    return "\n".join([head, "", main, "", "median reprojection error per camera (all detections with confidence "
                      f">= {CONF_THRESHOLD} of reconstructed points):", cams, "", "limb-length SD over frames:", limbs])


def run(args) -> int:
    from simspine.bench.pose2sim_runner import settings_for
    from simspine.fileio import ensure_out_dir, write_text_atomic
    from simspine.io.session import load_session

    out = ensure_out_dir(args.out) if args.out is not None else None
    path = Path(args.session) if args.session is not None else default_session()
    if not path.exists():
        raise InputError(path, "session not found")
    if not has_pose(path):
        raise InputError(path, f"no pose/ folder with 2D keypoints: run `simspine detect {path} --backend "
                               "mediapipe` first")
    session = load_session(path, fps=args.fps)
    result = compare(session, settings_for(gap_filling=args.pose2sim_gap_filling))
    print(format_result(result))
    args.figures = result  # --json (simspine.commands.bench)
    if out is not None:
        write_text_atomic(out / "bench_real.json", json.dumps(result, indent=1, default=_json_default) + "\n")
        print(f"\nwrote {out / 'bench_real.json'}")
    return 0


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(type(v).__name__)
