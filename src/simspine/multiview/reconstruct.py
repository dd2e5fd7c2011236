"""Triangulate a whole multi-view session and describe the result's quality.

:func:`triangulate_session` turns a :class:`~simspine.io.session.Session2D` (2D keypoints per
camera + calibration) into 3D :class:`~simspine.trajectories.Trajectories` in OpenSim's ground
frame (Y up, converted from the calibration's Z-up world with :func:`simspine.frames.zup_to_yup`),
plus a quality report: reprojection error per keypoint in pixels and in millimetres (pixel error
× depth / focal length in each used view) and, per camera, the share of observations it was
excluded from (missing or under the confidence threshold vs. rejected as inconsistent).

:func:`write_triangulation` writes the TRC, an ``.npz`` with everything the later stages need
(confidences, errors, views used) and the report as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.bench.table import format_table
from simspine.fileio import write_text_atomic
from simspine.frames import zup_to_yup
from simspine.io.npz import read_trajectories_npz, write_trajectories_npz
from simspine.io.session import Session2D
from simspine.multiview.lr_swap import SwapOptions, fix_lr_swaps_by_group, swap_index
from simspine.multiview.triangulation import TriangulationOptions, TriangulationResult, triangulate
from simspine.trajectories import Trajectories

YUP_FRAME = "opensim-ground (Y up); from the calibration world (Z up) by (x, y, z) -> (y, z, x)"
WORLD_FRAME = "calibration world (Z up)"


@dataclass
class Reconstruction:
    """A triangulated session.

    Attributes:
        markers: (T, K, 3) metres in OpenSim's ground frame (Y up), NaN where invalid; ``conf`` is
            the mean 2D confidence of the views used (0 where invalid).
        markers_world: the same points in the calibration's world frame (Z up).
        result: the raw :class:`TriangulationResult` (calibration world frame).
        report: quality report (JSON-serialisable dict, see :func:`quality_report`).
    """

    markers: Trajectories
    markers_world: Trajectories
    result: TriangulationResult
    report: dict


def _per_view_mm(cameras, points: np.ndarray, view_error_px: np.ndarray) -> np.ndarray:
    """(T, K, C) reprojection errors converted to millimetres at the point's depth in each view."""
    out = np.full(view_error_px.shape, np.nan)
    for c, cam in enumerate(cameras):
        z = cam.world_to_camera(points)[..., 2]
        f = 0.5 * (cam.K[0, 0] + cam.K[1, 1])
        out[..., c] = view_error_px[..., c] * z / f * 1000.0
    return out


def quality_report(session: Session2D, result: TriangulationResult, options: TriangulationOptions) -> dict:
    """Reprojection error per keypoint (px and mm) and exclusion shares per camera."""
    used = result.views_used  # (T, K, C)
    T, K, C = used.shape
    px = np.where(used, result.view_error, np.nan)
    mm = np.where(used, _per_view_mm(session.cameras, result.points, result.view_error), np.nan)
    unc = result.uncertainty_m_per_px
    unc = np.full((T, K), np.nan) if unc is None else unc * 1000.0
    with _nowarn():
        kp_px = np.nanmean(px, axis=(0, 2))
        kp_mm = np.nanmean(mm, axis=(0, 2))
        kp_unc = np.nanmean(unc, axis=0)
    keypoints = []
    for k, name in enumerate(session.keypoint_names):
        keypoints.append({"name": name, "valid_share": float(result.valid[:, k].mean()),
                          "reproj_error_px": _f(kp_px[k]), "reproj_error_mm": _f(kp_mm[k]),
                          "uncertainty_mm_per_px": _f(kp_unc[k])})
    observed = np.moveaxis(np.isfinite(session.keypoints).all(-1), 0, -1)  # (T, K, C)
    confident = observed & (np.moveaxis(session.conf, 0, -1) >= options.conf_threshold)
    cams = []
    for c, cam in enumerate(session.cameras):
        cams.append({
            "name": cam.name,
            "used_share": float(used[..., c].mean()),
            "excluded_share": float(1 - used[..., c].mean()),
            "excluded_missing_or_low_confidence": float((~confident[..., c]).mean()),
            "excluded_inconsistent": float((confident[..., c] & ~used[..., c]).mean()),
            "frames_excluded_share": float((~used[..., c]).all(-1).mean()),
        })
    # calibration health: residuals of every confident view of a valid point, used or not
    from simspine.multiview import calibration_health as ch

    health = ch.camera_statistics(result.view_error, used, result.valid, confident, session.camera_names)
    for entry, h in zip(cams, health, strict=True):
        entry.update({k: v for k, v in h.items() if k != "name"})
    report_warnings = ch.calibration_warnings(health) + [
        m for _, m in ch.video_size_findings(session.meta.get("source"), session.cameras)]
    with _nowarn():
        return {
            "units": {"reproj_error_px": "pixels", "reproj_error_mm": "millimetres at the point's depth",
                      "uncertainty_mm_per_px": "first-order RMS 3D error per px of image noise (view geometry)",
                      "shares": "fraction of frames x keypoints"},
            "frames": int(T), "keypoints_per_frame": int(K), "cameras_count": int(C),
            "valid_share": float(result.valid.mean()),
            "mean_reproj_error_px": _f(np.nanmean(px)), "mean_reproj_error_mm": _f(np.nanmean(mm)),
            "mean_views_used": _f(used.sum(-1)[result.valid].mean()) if result.valid.any() else None,
            "options": {k: (None if v is None else float(v) if isinstance(v, int | float) and not isinstance(v, bool)
                            else v) for k, v in vars(options).items()},
            "keypoints": keypoints,
            "cameras": cams,
            "warnings": report_warnings,
        }


def _nowarn():
    """Silence numpy's 'mean of empty slice' warnings (NaN is the intended answer there)."""
    return warnings.catch_warnings(action="ignore", category=RuntimeWarning)


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def format_report(report: dict) -> str:
    """The report as two plain-text tables (keypoints, cameras)."""
    kp = format_table(["keypoint", "valid %", "reproj px", "reproj mm", "mm per px noise"],
                      [[k["name"], 100 * k["valid_share"], _n(k["reproj_error_px"]), _n(k["reproj_error_mm"]),
                        _n(k.get("uncertainty_mm_per_px"))] for k in report["keypoints"]], floatfmt=".2f")
    cams = format_table(["camera", "used %", "excluded %", "missing/low conf %", "inconsistent %",
                         "whole frame excluded %"],
                        [[c["name"], 100 * c["used_share"], 100 * c["excluded_share"],
                          100 * c["excluded_missing_or_low_confidence"], 100 * c["excluded_inconsistent"],
                          100 * c["frames_excluded_share"]] for c in report["cameras"]], floatfmt=".1f")
    head = (f"{report['frames']} frames x {report['keypoints_per_frame']} keypoints, {report['cameras_count']} "
            f"cameras: {100 * report['valid_share']:.1f}% valid, mean reprojection error "
            f"{_n(report['mean_reproj_error_px']):.2f} px = {_n(report['mean_reproj_error_mm']):.1f} mm")
    lines = [head, "", kp, "", cams]
    if report["cameras"] and "median_px" in report["cameras"][0]:
        lines += ["", format_table(
            ["camera", "confident obs.", "median px", "p95 px", "used median px", "inconsistent %", "points used %"],
            [[c["name"], c["observations"], _n(c["median_px"]), _n(c["p95_px"]), _n(c["used_median_px"]),
              100 * _n(c["inconsistent_share"]), 100 * _n(c["points_used_share"])] for c in report["cameras"]],
            floatfmt=".1f"),
            "(calibration health: reprojection error of every confident view of a triangulated point, used or not; "
            "inconsistent: share of those views excluded)"]
    sw = report.get("lr_swap")
    if sw and sw.get("enabled"):
        per = [f"{name} {v['frames_unswapped']} ({', '.join(f'{a}-{b}' for a, b in v['runs'])})"
               for name, v in sw["cameras"].items() if v["frames_unswapped"]]
        lines += ["", "left/right swaps undone (frames): " + ("; ".join(per) if per else "none")]
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(lines)


def _n(v):
    return float("nan") if v is None else float(v)


def triangulate_session(session: Session2D, options: TriangulationOptions | None = None) -> Reconstruction:
    """Triangulate every frame and keypoint of ``session``; see the module docstring.

    With ``options.swap_fix`` (default) views whose left/right labels are swapped over runs of
    frames are relabelled first, per keypoint group (arms, legs, face:
    :func:`simspine.multiview.lr_swap.fix_lr_swaps_by_group`, pairs and groups from the session's
    keypoint names); the report's ``lr_swap`` entry counts them per camera (and per group).
    """
    o = options or TriangulationOptions()
    from simspine.multiview.calibration_health import check_video_sizes

    check_video_sizes(session.meta.get("source"), session.cameras)  # a video another camera's size: stop now
    uv, conf_in = session.keypoints, session.conf
    swapped = np.zeros((session.n_cameras, session.n_frames), dtype=bool)
    swap = swap_index(session.keypoint_names)
    by_group: dict = {}
    if o.swap_fix:
        uv, conf_in, by_group = fix_lr_swaps_by_group(session.cameras, uv, conf_in, swap,
                                                      options=SwapOptions(conf_threshold=o.conf_threshold),
                                                      triangulation=o, names=session.keypoint_names)
        for m in by_group.values():
            swapped = swapped | m
    res = triangulate(session.cameras, uv, conf_in, o)
    used = res.views_used
    conf2 = np.moveaxis(np.nan_to_num(conf_in), 0, -1)  # (T, K, C)
    n = used.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(res.valid, (conf2 * used).sum(-1) / np.maximum(n, 1), 0.0)
    conf = np.clip(conf, 0.0, 1.0)
    meta = {"source": session.meta.get("source", ""), "skeleton": session.skeleton,
            "cameras": session.camera_names}
    world = Trajectories(session.timestamps, session.keypoint_names, res.points, conf, WORLD_FRAME, dict(meta))
    yup = Trajectories(session.timestamps, session.keypoint_names, zup_to_yup(res.points), conf.copy(), YUP_FRAME,
                       dict(meta))
    # the report's exclusion shares describe the labels actually triangulated
    report = quality_report(dataclasses.replace(session, keypoints=uv, conf=conf_in) if swapped.any() else session,
                            res, o)
    report["lr_swap"] = _swap_report(session, swapped, swap, o.swap_fix)
    for c, name in enumerate(session.camera_names):
        report["lr_swap"]["cameras"][name]["groups"] = {g: int(m[c].sum()) for g, m in by_group.items()}
    return Reconstruction(yup, world, res, report)


def _swap_report(session: Session2D, swapped: np.ndarray, swap: np.ndarray, enabled: bool) -> dict:
    """Per camera: how many frames had their left/right labels swapped back, and in which runs."""
    cams = {}
    for c, name in enumerate(session.camera_names):
        f = np.flatnonzero(swapped[c])
        # runs of consecutive frames as [first, last] frame indices
        cuts = np.flatnonzero(np.diff(f) > 1)
        first, last = np.r_[0, cuts + 1], np.r_[cuts, len(f) - 1]
        runs = [[int(f[a]), int(f[b])] for a, b in zip(first, last, strict=True)] if f.size else []
        cams[name] = {"frames_unswapped": int(f.size), "runs": runs}
    return {"enabled": bool(enabled), "pairs": int((swap > np.arange(len(swap))).sum()),
            "frames_unswapped_total": int(swapped.sum()), "cameras": cams}


def write_triangulation(rec: Reconstruction, out_dir: str | os.PathLike, stem: str = "triangulated") -> dict[str, Path]:
    """Write ``<stem>.trc`` (Y up), ``<stem>.npz`` and ``<stem>_report.json`` into ``out_dir``.

    Returns the paths by kind. Each file is written atomically.
    """
    from simspine.io.trc import write_trc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trc": out / f"{stem}.trc", "npz": out / f"{stem}.npz", "report": out / f"{stem}_report.json"}
    write_trc(paths["trc"], rec.markers)
    r = rec.result
    write_trajectories_npz(
        paths["npz"], rec.markers,
        arrays=dict(reproj_error=r.reproj_error, valid=r.valid, views_used=r.views_used,
                    uncertainty_m_per_px=r.uncertainty_m_per_px, view_error=r.view_error),
        meta={"units": {"xyz": "m", "time": "s", "reproj_error": "px", "view_error": "px",
                        "uncertainty_m_per_px": "m per px"},
              "shapes": "xyz (T, K, 3); conf, reproj_error, valid, uncertainty_m_per_px (T, K); "
                        "views_used, view_error (T, K, C)",
              "cameras": rec.markers.meta.get("cameras", [])})
    write_text_atomic(paths["report"], json.dumps(rec.report, indent=1) + "\n")
    return paths


def read_triangulation(path: str | os.PathLike) -> Trajectories:
    """Read the ``.npz`` written by :func:`write_triangulation` back as Y-up trajectories with
    their confidences."""
    return read_trajectories_npz(path, "simspine triangulation file")


#: a calibration whose camera translations exceed this many metres is probably in millimetres
MM_CALIBRATION_M = 50.0


def require_points(session: Session2D, rec: Reconstruction, options: TriangulationOptions | None = None) -> None:
    """Raise :class:`~simspine.errors.InputError` when the triangulation of ``session`` has no
    valid point at all, naming the session and what to check (an all-NaN output is never
    written): a calibration in millimetres (camera translations over ``MM_CALIBRATION_M``), no 2D
    keypoint, too few confident views (``--conf-threshold``, the keypoint layout), or views that
    never agree (calibration vs videos, ``--reproj-threshold``)."""
    from simspine.errors import InputError

    if rec.result.valid.any():
        return
    o = options or TriangulationOptions()
    source = session.meta.get("source") or "session"
    causes = []
    dist = [float(np.linalg.norm(c.t)) for c in session.cameras]
    if dist and max(dist) > MM_CALIBRATION_M:
        calib = session.meta.get("calibration")
        causes.append(f"the camera translations{f' in {calib}' if calib else ''} are {min(dist):.4g} to "
                      f"{max(dist):.4g} 'metres' from the world "
                      "origin: the calibration looks like millimetres (Pose2Sim's TOML expects t in metres; divide "
                      "t by 1000)")
        raise InputError(source, "triangulation found no valid 3D point in any frame; likely cause: " + causes[0])
    observed = np.isfinite(session.keypoints).all(-1)  # (C, T, K)
    confident = observed & (np.nan_to_num(session.conf) >= o.conf_threshold)
    seen2 = float((confident.sum(0) >= 2).mean()) if confident.size else 0.0
    if not observed.any():
        causes.append("no camera has any 2D keypoint: check the pose folders and the keypoint layout")
    elif seen2 == 0:
        top = float(np.nanmax(np.where(observed, session.conf, np.nan)))
        causes.append(f"no keypoint is seen by two cameras with confidence >= {o.conf_threshold:g} (highest "
                      f"confidence {top:.2f}): lower --conf-threshold, or check the keypoint layout "
                      f"({session.skeleton or 'unknown'}) and that the cameras' frames line up")
    else:
        causes.append(f"{100 * seen2:.0f}% of keypoint-frames are seen by two or more confident cameras but no view "
                      f"pair agreed within the thresholds (--reproj-threshold {o.reproj_threshold_px:g} px): check "
                      "that the calibration belongs to these videos (units, camera names, image size) or raise "
                      "the thresholds")
    raise InputError(source, "triangulation found no valid 3D point in any frame; likely cause"
                             f"{'s' if len(causes) > 1 else ''}: " + "; ".join(causes))
