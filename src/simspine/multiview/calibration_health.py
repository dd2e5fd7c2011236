"""Calibration health: does one camera disagree with the others?

A camera whose calibration is wrong (moved or bumped after calibrating, the wrong calibration file,
a video cropped or padded after calibrating) still gives plausible-looking 3D points: the robust
triangulation drops its views where they disagree and the other cameras carry on, a little less
accurately. What gives it away is the per-camera statistics of the triangulation:

* **reprojection error of its confident observations** at the triangulated points: the median and
  95th percentile in pixels, over *all* its confident views of a point that has a 3D estimate
  (``median_px``, ``p95_px``: used or not, so that a view dropped for disagreeing still counts),
  and over the views used only (``used_median_px``, ``used_p95_px``, the classic figure);
* **inconsistency share**: the share of its confident observations of triangulated points that
  the consistency and pruning steps excluded;
* **views used share**: the share of the triangulated points this camera took part in.

:func:`calibration_warnings` names a camera whose figures stand out from the others' (robustly:
each camera is compared with the median of the *other* cameras' figures, so one bad camera cannot
hide by raising the reference) and says what to do. Rules (:class:`HealthOptions`):

* median error above ``error_ratio`` × the others' median and above ``error_floor_px``;
* failing that, the camera excluded most often, if its inconsistency share is above
  ``inconsistent_ratio`` × the others' median and at least ``inconsistent_margin`` above it (a
  camera that is off also raises the inconsistency share of the cameras whose views it out-voted,
  so this figure alone does not name a camera when one's error stands out).

With two cameras both see the same disagreement, so no camera can be named.

:func:`video_size_findings` compares each video's frame size (``SESSION/videos/<camera>.*``, read
with OpenCV) with its calibration's: a few pixels of difference (e.g. 1080 vs 1088, an encoder
padding to a multiple of 16) is a warning, a different aspect ratio (rotated video, another camera's
calibration) is an error.

Everything here is a pure function of arrays (and, for videos, file headers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
REFINE_HINT = "run `simspine calibrate refine SESSION --out FILE.toml` and triangulate with --calibration FILE.toml"


@dataclass(frozen=True)
class HealthOptions:
    """Thresholds of :func:`calibration_warnings` (see the module docstring).

    Attributes:
        error_ratio, error_floor_px: a camera's median error must exceed both ``error_ratio`` ×
            the median of the other cameras' medians and ``error_floor_px``.
        inconsistent_ratio, inconsistent_margin: a camera's inconsistency share must exceed both
            ``inconsistent_ratio`` × the others' median share and that median + ``inconsistent_margin``.
        min_observations: cameras with fewer confident observations of triangulated points are
            not judged (and not used as reference).
        aspect_tolerance: relative aspect-ratio difference between a video and its calibration
            above which the sizes are an error rather than a warning.
    """

    error_ratio: float = 2.0
    error_floor_px: float = 5.0
    inconsistent_ratio: float = 3.0
    inconsistent_margin: float = 0.10
    min_observations: int = 30
    aspect_tolerance: float = 0.05


def _q(v: np.ndarray, q: float) -> float | None:
    return float(np.percentile(v, q)) if v.size else None


def camera_statistics(view_error: np.ndarray, views_used: np.ndarray, valid: np.ndarray, confident: np.ndarray,
                      names: list[str]) -> list[dict]:
    """Per-camera residual statistics of a triangulation.

    Args:
        view_error: (..., C) reprojection error of each view, px (NaN where unobserved), as in
            :class:`~simspine.multiview.triangulation.TriangulationResult`.
        views_used: (..., C) views that took part in the final estimate.
        valid: (...,) points with a 3D estimate.
        confident: (..., C) usable observations (finite and confidence at or above the
            triangulation's threshold).
        names: C camera names.
    Returns:
        One dict per camera: ``name``, ``observations`` (confident views of valid points),
        ``median_px``, ``p95_px`` (all those views), ``used_median_px``, ``used_p95_px`` (views
        used), ``inconsistent_share`` (share of those observations excluded),
        ``points_used_share`` (share of valid points the camera took part in). Figures are None
        without data.
    """
    C = view_error.shape[-1]
    err = view_error.reshape(-1, C)
    used = views_used.reshape(-1, C)
    ok = valid.reshape(-1)
    conf = confident.reshape(-1, C) & ok[:, None] & np.isfinite(err)
    n_valid = int(ok.sum())
    out = []
    for c, name in enumerate(names):
        e_all = err[conf[:, c], c]
        u = used[:, c] & ok
        e_used = err[u & np.isfinite(err[:, c]), c]
        n = int(conf[:, c].sum())
        out.append({
            "name": name,
            "observations": n,
            "median_px": _q(e_all, 50), "p95_px": _q(e_all, 95),
            "used_median_px": _q(e_used, 50), "used_p95_px": _q(e_used, 95),
            "inconsistent_share": float((conf[:, c] & ~u).sum() / n) if n else None,
            "points_used_share": float(u.sum() / n_valid) if n_valid else None,
        })
    return out


def calibration_warnings(stats: list[dict], options: HealthOptions | None = None) -> list[str]:
    """Warnings naming the cameras whose statistics (:func:`camera_statistics`) stand out."""
    o = options or HealthOptions()
    judged = [s for s in stats if s["observations"] >= o.min_observations and s["median_px"] is not None]
    if len(judged) < 3:
        return []
    found = []
    for s in judged:
        others = [t for t in judged if t is not s]
        ref_err = float(np.median([t["median_px"] for t in others]))
        ref_inc = float(np.median([t["inconsistent_share"] for t in others]))
        inc = s["inconsistent_share"]
        by_error = s["median_px"] > o.error_ratio * ref_err and s["median_px"] > o.error_floor_px
        by_inc = inc > o.inconsistent_ratio * ref_inc and inc >= ref_inc + o.inconsistent_margin
        if by_error or by_inc:
            found.append((by_error, s, ref_err, ref_inc))
    # A camera that is off shows it in the error of all its observations; the inconsistency share
    # also rises in the cameras whose views it out-voted, so inconsistency alone names a camera
    # only when no camera's error stands out, and then only the one excluded most often.
    named = [f for f in found if f[0]]
    if not named and found:
        named = [max(found, key=lambda f: f[1]["inconsistent_share"])]
    out = []
    for _, s, ref_err, ref_inc in named:
        out.append(f"camera {s['name']} disagrees with the other cameras: median reprojection error "
                   f"{s['median_px']:.1f} px (p95 {s['p95_px']:.1f} px) vs {ref_err:.1f} px for the others; "
                   f"excluded as inconsistent from {100 * s['inconsistent_share']:.0f}% of its confident "
                   f"observations vs {100 * ref_inc:.0f}%. Check its calibration (moved or bumped after "
                   f"calibrating? the right file?); {REFINE_HINT}")
    return out


# ---- video frame sizes ----------------------------------------------------------------------------
def find_videos(folder: str | os.PathLike, cameras) -> dict[str, Path]:
    """Camera name -> its video in ``folder/videos`` (same stem, else the only one with the
    camera's number, as keypoint folders are matched)."""
    from simspine.io.session import match_camera

    vids = Path(folder) / "videos"
    if not vids.is_dir():
        return {}
    out: dict[str, Path] = {}
    for v in sorted(vids.iterdir()):
        if v.is_file() and v.suffix.lower() in VIDEO_SUFFIXES:
            cam = match_camera(v.stem, list(cameras))
            if cam is not None and cam.name not in out:
                out[cam.name] = v
    return out


def video_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of a video's frames from its header (OpenCV), or None if unreadable."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    finally:
        cap.release()
    return (int(round(w)), int(round(h))) if w > 0 and h > 0 else None


def compare_size(camera: str, video: tuple[int, int], calib: tuple[int, int],
                 options: HealthOptions | None = None) -> tuple[str, str] | None:
    """``(level, message)`` for a video of size ``video`` whose calibration says ``calib``
    (``level`` is ``"warning"`` or ``"error"``), or None when they match."""
    o = options or HealthOptions()
    vw, vh = video
    cw, ch = calib
    if (vw, vh) == (cw, ch):
        return None
    sizes = f"the video is {vw}x{vh} px but its calibration says {cw}x{ch} px"
    aspect = (vw / vh) / (cw / ch)
    if abs(aspect - 1) > o.aspect_tolerance:
        return "error", (f"camera {camera}: {sizes} (aspect ratio {vw / vh:.3f} vs {cw / ch:.3f}): the calibration "
                         "does not belong to this video (rotated video, or another camera's calibration?)")
    scale = 0.5 * (vw / cw + vh / ch)
    if abs(scale - 1) > o.aspect_tolerance:
        return "warning", (f"camera {camera}: {sizes}: the calibration was made at {1 / scale:.2g}x this resolution; "
                           "keypoints detected on this video are not in the calibration's pixels (scale the "
                           "intrinsic matrix, or detect on full-resolution frames)")
    return "warning", (f"camera {camera}: {sizes} ({abs(vw - cw)} x {abs(vh - ch)} px apart, e.g. an encoder "
                       "padding to a multiple of 16): its principal point may be off by up to half that; check "
                       "that the calibration was made on frames of this size")


def video_size_findings(folder: str | os.PathLike | None, cameras, options: HealthOptions | None = None
                        ) -> list[tuple[str, str]]:
    """``(level, message)`` for every camera of ``cameras`` whose video in ``folder/videos`` has
    another frame size than its calibration; [] when there is no such folder."""
    if folder is None or not Path(folder).is_dir():
        return []
    by_name = {c.name: c for c in cameras}
    out = []
    for name, path in find_videos(folder, cameras).items():
        size = video_size(path)
        if size is None:
            continue
        f = compare_size(name, size, tuple(by_name[name].size), options)
        if f is not None:
            out.append(f)
    return out


def check_video_sizes(folder: str | os.PathLike | None, cameras, options: HealthOptions | None = None) -> list[str]:
    """Warnings for videos whose frame size differs a little from their calibration's; raises
    :class:`InputError` when a video's aspect ratio differs (the calibration cannot be its)."""
    found = video_size_findings(folder, cameras, options)
    errors = [m for level, m in found if level == "error"]
    if errors:
        raise InputError(Path(folder) / "videos", "; ".join(errors))
    return [m for _, m in found]
