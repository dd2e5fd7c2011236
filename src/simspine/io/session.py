"""A multi-view 2D session: calibrated cameras plus per-camera 2D keypoints over time.

:class:`Session2D` is what the triangulation stage consumes. It is saved as one compressed
``.npz`` (no pickles) whose ``meta_json`` entry records the format, units and world frame.
:func:`load_pose2sim_session` builds one from a Pose2Sim project folder::

    <folder>/calibration/*.toml | *.qca.txt     (any sub-folder whose name contains "calib")
    <folder>/pose/<camera>_json/*.json          (or pose-associated/ or pose-sync/, Pose2Sim's order)
    <folder>/Config.toml                        (optional: project.frame_rate, pose.pose_model)
    <folder>/videos/<camera>.*                  (optional: frame rate when the config says 'auto')

Time axis: a frame is the number in its JSON file's name (``cam01_000012.json`` is frame 12), never
its position in the folder. Cameras are aligned by that number over one range, from the first
number any camera has to the last; a frame a camera has no file for is missing there (NaN,
confidence 0), a frame no camera has is a gap at its true time. Timestamps are
``(frame - first frame) / fps`` seconds; ``meta['first_frame']`` keeps the absolute number.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.calibration import load_calibration
from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.io.npz import save_npz
from simspine.io.openpose import (
    by_last_number,
    keypoint_count,
    last_number,
    list_frame_files,
    numbered_frame_files,
    read_openpose_people_folder,
)
from simspine.skeletons import POSE2SIM_ALIASES, pose2sim_layout, pose2sim_layout_name

FORMAT = "simspine.session2d"
FORMAT_VERSION = 1
DEFAULT_WORLD_FRAME = "calibration world (metres; Z up for Qualisys / Pose2Sim / Human3.6M)"
POSE_DIRS = ("pose-associated", "pose-sync", "pose")  # Pose2Sim's preference order
# Pose2Sim's [pose] pose_model aliases -> the skeleton names in Pose2Sim.skeletons
POSE2SIM_MODEL_ALIASES = POSE2SIM_ALIASES
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm")


@dataclass
class Session2D:
    """2D keypoints of one subject seen by several calibrated cameras.

    Attributes:
        cameras: C cameras (extrinsics in ``world_frame``, metres).
        keypoints: (C, T, K, 2) pixel coordinates (distorted, as detected); NaN where missing.
        conf: (C, T, K) confidence in [0, 1]; 0 where missing.
        timestamps: (T,) seconds.
        keypoint_names: K names (SpineTrack-37 order for SpineTrack-37 data).
        skeleton: name of the keypoint layout (e.g. ``"SpineTrack-37"``, ``"HALPE_26"``).
        fps: frame rate in Hz.
        world_frame: what the camera extrinsics are expressed in.
        meta: free metadata (JSON-serialisable), e.g. where the session came from.
    """

    cameras: list[Camera]
    keypoints: np.ndarray
    conf: np.ndarray
    timestamps: np.ndarray
    keypoint_names: list[str]
    skeleton: str = ""
    fps: float = float("nan")
    world_frame: str = DEFAULT_WORLD_FRAME
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, dtype=float)
        self.conf = np.asarray(self.conf, dtype=float)
        self.timestamps = np.asarray(self.timestamps, dtype=float).reshape(-1)
        self.keypoint_names = [str(n) for n in self.keypoint_names]
        self.cameras = list(self.cameras)
        kp = self.keypoints
        if kp.ndim != 4 or kp.shape[3] != 2:
            raise InputError(None, f"keypoints must be (cameras, frames, keypoints, 2), got {kp.shape}")
        C, T, K, _ = kp.shape
        if C != len(self.cameras):
            raise InputError(None, f"{C} cameras of keypoints but {len(self.cameras)} calibrated cameras")
        if self.conf.shape != (C, T, K):
            raise InputError(None, f"confidences {self.conf.shape} do not match keypoints {kp.shape[:3]}")
        if self.timestamps.shape != (T,):
            raise InputError(None, f"{self.timestamps.size} timestamps for {T} frames")
        if len(self.keypoint_names) != K:
            raise InputError(None, f"{len(self.keypoint_names)} keypoint names for {K} keypoints")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise InputError(None, f"duplicate camera names: {names}")
        if not np.isfinite(self.fps) and T > 1:
            self.fps = float(1.0 / np.median(np.diff(self.timestamps)))

    @property
    def n_cameras(self) -> int:
        return len(self.cameras)

    @property
    def n_frames(self) -> int:
        return int(self.keypoints.shape[1])

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    # ---- npz --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the session to a compressed ``.npz`` (atomically); returns the path."""
        meta = {"format": FORMAT, "version": FORMAT_VERSION,
                "units": {"keypoints": "px", "timestamps": "s", "camera_translation": "m", "K": "px"},
                "world_frame": self.world_frame, "skeleton": self.skeleton, "fps": self.fps,
                "camera_extrinsics": "X_cam = R @ X_world + t",
                "shapes": "keypoints (C, T, K, 2), conf (C, T, K), timestamps (T,)",
                "meta": self.meta}
        try:
            meta_json = json.dumps(meta, allow_nan=True)
        except TypeError as e:
            raise InputError(path, f"session metadata is not JSON-serialisable ({e})") from None
        cams = self.cameras
        arrays = dict(
            keypoints=self.keypoints, conf=self.conf, timestamps=self.timestamps,
            keypoint_names=np.array(self.keypoint_names, dtype=str),
            camera_names=np.array([c.name for c in cams], dtype=str),
            camera_size=np.array([c.size for c in cams], dtype=np.int64).reshape(-1, 2),
            camera_K=np.array([c.K for c in cams]).reshape(-1, 3, 3),
            camera_dist=np.array([c.dist for c in cams]).reshape(-1, 5),
            camera_R=np.array([c.R for c in cams]).reshape(-1, 3, 3),
            camera_t=np.array([c.t for c in cams]).reshape(-1, 3),
            camera_dist_model=np.array([c.dist_model for c in cams], dtype=str),
            meta_json=np.array(meta_json),
        )
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(path, "a session file must end in .npz")
        return save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Session2D:
        """Read a session written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except OSError as e:
            raise InputError(path, f"cannot read session file: {e.strerror or e}") from None
        except Exception as e:  # zipfile/pickle/format errors all mean the same to a user
            raise InputError(path, f"not a simspine session file ({type(e).__name__}: {e})") from None
        required = ("keypoints", "conf", "timestamps", "keypoint_names", "camera_names", "camera_size",
                    "camera_K", "camera_dist", "camera_R", "camera_t", "camera_dist_model", "meta_json")
        missing = [k for k in required if k not in d]
        if missing:
            raise InputError(path, f"not a simspine session file (missing {', '.join(missing)})")
        try:
            meta = json.loads(str(d["meta_json"]))
        except json.JSONDecodeError as e:
            raise InputError(path, f"corrupt session metadata ({e})") from None
        if meta.get("format") != FORMAT:
            raise InputError(path, f"not a simspine session file (format {meta.get('format')!r})")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise InputError(path, f"session format version {meta['version']} is newer than this simspine reads")
        try:
            cams = [Camera(str(n), tuple(s), K, dist, R, t, str(m)) for n, s, K, dist, R, t, m in zip(
                d["camera_names"], d["camera_size"], d["camera_K"], d["camera_dist"], d["camera_R"],
                d["camera_t"], d["camera_dist_model"], strict=True)]
            return cls(cams, d["keypoints"], d["conf"], d["timestamps"], list(d["keypoint_names"]),
                       meta.get("skeleton", ""), float(meta.get("fps", float("nan"))),
                       meta.get("world_frame", DEFAULT_WORLD_FRAME), meta.get("meta", {}))
        except (InputError, ValueError) as e:
            raise InputError(path, getattr(e, "problem", str(e))) from None


# ---- Pose2Sim project folders -----------------------------------------------------------------
def find_calibration(folder: Path) -> Path:
    """The calibration file of a Pose2Sim project: the newest ``*.toml`` in a ``*calib*`` folder,
    else a ``*.qca.txt`` there (Pose2Sim converts those to TOML first)."""
    dirs = [d for d in sorted(folder.iterdir()) if d.is_dir() and "calib" in d.name.lower()]
    tomls = [p for d in dirs for p in d.glob("*.toml")]
    if tomls:
        return max(tomls, key=lambda p: (p.stat().st_mtime, p.name))
    qcas = sorted(p for d in dirs for p in d.glob("*.qca.txt"))
    if len(qcas) == 1:
        return qcas[0]
    if len(qcas) > 1:
        raise InputError(folder, f"several Qualisys calibrations, pass one explicitly: {[str(q) for q in qcas]}")
    raise InputError(folder, "no calibration found (expected calibration/*.toml or calibration/*.qca.txt)")


def find_keypoint_folders(folder: Path) -> list[Path]:
    """Per-camera OpenPose JSON folders: sub-folders with 'json' in their name of the first of
    ``pose-associated``, ``pose-sync``, ``pose`` that has any, ordered by their last number."""
    for name in POSE_DIRS:
        pose_dir = folder / name
        if pose_dir.is_dir():
            dirs = [d for d in pose_dir.iterdir() if d.is_dir() and "json" in d.name.lower()]
            if dirs:
                return by_last_number(dirs)
    raise InputError(folder, "no 2D keypoint folders found (expected pose/<camera>_json/ with OpenPose JSON files)")


def match_camera(dir_name: str, cameras: list[Camera]) -> Camera | None:
    """The camera a keypoint folder belongs to: same name once ``_json`` is removed, else the only
    camera whose name ends with the same number (``cam01_json`` <-> ``int_cam01_img``)."""
    stem = re.sub(r"_?json$", "", dir_name, flags=re.IGNORECASE)
    for cam in cameras:
        if cam.name == stem:
            return cam
    n = last_number(stem)
    if n is None:
        return None
    same = [c for c in cameras if last_number(c.name) == n]
    return same[0] if len(same) == 1 else None


def keypoint_names_for(skeleton: str | None, n_keypoints: int) -> tuple[str, list[str]]:
    """(skeleton name, K keypoint names) for a skeleton name, or guessed from K when None.

    Known: SpineTrack-37 (also guessed for K = 37), Human3.6M-32/17, and every Pose2Sim layout
    (``HALPE_26``, ``COCO_17``, ``COCO_133``, ``BODY_25``, ``BLAZEPOSE``..., any case, aliases such as
    ``Body_with_feet``: :func:`simspine.skeletons.pose2sim_layout`), whose points that correspond to
    SpineTrack-37 points carry the SpineTrack-37 names. Anything else gets ``kp0 .. kp<K-1>``.

    Raises:
        InputError: a known layout whose keypoint count is not K.
    """
    from simspine import skeletons as sk

    ours = {"spinetrack37": sk.spinetrack37, "spinetrack-37": sk.spinetrack37, "h36m32": sk.h36m32,
            "human3.6m-32": sk.h36m32, "h36m17": sk.h36m17, "human3.6m-17": sk.h36m17}
    if skeleton is None and n_keypoints == 37:
        skeleton = "spinetrack37"
    if skeleton is not None and skeleton.lower() in ours:
        s = ours[skeleton.lower()]()
        if len(s) != n_keypoints:
            raise InputError(None, f"skeleton {s.name} has {len(s)} keypoints but the files hold {n_keypoints}")
        return s.name, list(s.names)
    if skeleton is not None and pose2sim_layout_name(skeleton) is not None:
        layout, names = pose2sim_layout(skeleton, n_keypoints)
        return layout, list(names)
    return skeleton or "unknown", [f"kp{i}" for i in range(n_keypoints)]


def _config(folder: Path) -> dict:
    cfg = folder / "Config.toml"
    if not cfg.is_file():
        return {}
    try:
        with open(cfg, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(cfg, f"cannot read Pose2Sim config ({e})") from None


def _video_for(folder: Path, camera: str) -> Path | None:
    """The video of ``camera`` in ``folder/videos``: same stem, else the only video whose stem ends
    with the camera's number (``cam01`` <-> ``int_cam01_img.mp4``)."""
    vids = folder / "videos"
    if not vids.is_dir():
        return None
    videos = [v for v in sorted(vids.iterdir()) if v.is_file() and v.suffix.lower() in VIDEO_SUFFIXES]
    for v in videos:
        if v.stem == camera:
            return v
    n = last_number(camera)
    same = [v for v in videos if n is not None and last_number(v.stem) == n]
    return same[0] if len(same) == 1 else None


def video_fps(path: str | os.PathLike) -> float | None:
    """The frame rate (Hz) a video's container states (OpenCV), or None when it states none."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else None


# two videos "agree" on their frame rate within this (Hz): containers store rates such as 60 as
# 60/1 or 59.99999; 29.97 vs 30 is a real disagreement
_FPS_TOLERANCE_HZ = 1e-3


def check_fps(fps, source) -> float:
    """``fps`` as a float after checking that it is a finite number > 0 (error names ``source``)."""
    try:
        v = float(fps)
    except (TypeError, ValueError):
        raise InputError(source, f"frame rate {fps!r} is not a number") from None
    if not np.isfinite(v) or v <= 0:
        raise InputError(source, f"frame rate must be a number > 0 (Hz), got {fps!r}")
    return v


def session_fps(folder: Path, cameras: list[str], cfg: dict | None = None) -> tuple[float, str]:
    """(frame rate in Hz, where it came from) of a Pose2Sim project.

    ``[project] frame_rate`` of ``Config.toml`` when it is a number; otherwise (absent or
    ``'auto'``) the rate the cameras' videos state, which must agree. Never a default.

    Raises:
        InputError: a frame_rate that is neither a number > 0 nor ``'auto'``; videos that state
            different rates; no rate anywhere (each asks for ``--fps``).
    """
    cfg = _config(folder) if cfg is None else cfg
    cfg_path = folder / "Config.toml"
    fr = cfg.get("project", {}).get("frame_rate") if isinstance(cfg.get("project"), dict) else None
    if fr is not None and not (isinstance(fr, str) and fr.strip().lower() == "auto"):
        if isinstance(fr, bool) or not isinstance(fr, int | float):
            raise InputError(cfg_path, f"[project] frame_rate is {fr!r}; expected a number (Hz) or 'auto'")
        return check_fps(fr, cfg_path), "Config.toml"
    rates = {}
    for cam in cameras:
        v = _video_for(folder, cam)
        if v is not None:
            f = video_fps(v)
            if f is not None:
                rates[v.name] = f
    if rates:
        vals = list(rates.values())
        if max(vals) - min(vals) > _FPS_TOLERANCE_HZ:
            raise InputError(folder / "videos", "the videos state different frame rates: "
                             + ", ".join(f"{k} {v:g} fps" for k, v in rates.items())
                             + "; pass the rate of the keypoint files with --fps")
        return float(np.mean(vals)), "video: " + ", ".join(rates)
    said = f"frame_rate = {fr!r}" if fr is not None else "no [project] frame_rate"
    where = "Config.toml has " + said if cfg_path.is_file() else "there is no Config.toml"
    raise InputError(folder, f"frame rate unknown: {where} and no video in videos/ states one for the cameras "
                             f"({', '.join(cameras)}); pass it with --fps (e.g. --fps 60)")


def load_pose2sim_session(folder: str | os.PathLike, calibration: str | os.PathLike | None = None,
                          skeleton: str | None = None, fps: float | None = None, person: int = 0) -> Session2D:
    """Build a :class:`Session2D` from a Pose2Sim project folder (layout in the module docstring).

    Args:
        folder: the project folder.
        calibration: a calibration file to use instead of searching ``calibration/``.
        skeleton: keypoint layout name; default: ``[pose] pose_model`` of ``Config.toml``, or
            SpineTrack-37 when the files hold 37 keypoints.
        fps: frame rate (Hz, > 0); default ``[project] frame_rate`` of ``Config.toml``, else the
            rate the cameras' videos state (they must agree); else an error asking for it.
        person: which subject when files hold several people (0: the most central; see
            :mod:`simspine.multiview.association`). When any frame of any camera holds more than one
            person, each camera's person per frame is chosen by cross-view agreement and continuity
            with the subject (not by confidence); ``meta['people']`` records how.
    Frames are aligned by the number in the file names (module docstring): T is the range from the
    first to the last frame number over all cameras; ``timestamps`` are ``(frame - first) / fps``;
    ``meta`` records ``first_frame``, ``last_frame`` and per camera ``frames_missing`` (numbers
    in the range without a file). Cameras of the calibration without a keypoint folder are left out
    (listed in ``meta['unused_cameras']``); the session keeps the keypoint folders' order.

    Raises:
        InputError: no calibration or keypoint folders, a keypoint folder with no camera in the
            calibration, fewer than 2 cameras, a camera folder whose files hold another keypoint
            count than the other cameras' (named), files without a frame number, no frame rate,
            or any bad file (named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "session folder not found")
    if fps is not None:
        fps = check_fps(fps, "fps")
    calib_path = Path(calibration) if calibration is not None else find_calibration(folder)
    cams_all = load_calibration(calib_path)
    kp_dirs = find_keypoint_folders(folder)
    cams = []
    for d in kp_dirs:
        cam = match_camera(d.name, cams_all)
        if cam is None:
            raise InputError(d, f"keypoint folder has no camera in the calibration {calib_path} "
                                f"(cameras: {', '.join(c.name for c in cams_all)})")
        if any(c is cam for c in cams):  # Camera holds arrays: compare by identity
            raise InputError(d, f"a second keypoint folder for camera {cam.name!r}")
        cams.append(cam)
    if len(cams) < 2:
        raise InputError(folder, f"{len(cams)} camera(s) with 2D keypoints; triangulation needs at least 2")
    numbered = [numbered_frame_files(d) for d in kp_dirs]
    n_kp = _common_keypoint_count(folder, kp_dirs, [files for _, files in numbered])
    first, last = _frame_range(folder, cams, numbered)
    frames = np.arange(first, last + 1)
    people = [read_openpose_people_folder(d, n_kp, frames) for d in kp_dirs]
    cfg = _config(folder)
    skeleton_source = folder
    if skeleton is None:
        pm = cfg.get("pose", {}).get("pose_model")
        skeleton = pm if isinstance(pm, str) and n_kp != 37 else None
        skeleton_source = folder / "Config.toml"
    try:
        skel_name, names = keypoint_names_for(skeleton, n_kp)
    except InputError as e:  # the layout named (argument or Config.toml) does not fit the files
        raise InputError(skeleton_source, e.problem) from None
    if fps is None:
        fps, fps_source = session_fps(folder, [c.name for c in cams], cfg)
    else:
        fps_source = "argument"
    per_cam, people_meta = choose_person(folder, cams, people, person, fps)
    used = {c.name for c in cams}
    unused = [c.name for c in cams_all if c.name not in used]
    missing = {c.name: int(len(frames) - np.isin(frames, n).sum()) for c, (n, _) in zip(cams, numbered, strict=True)}
    meta = {"source": str(folder), "calibration": str(calib_path), "keypoint_folders": [str(d) for d in kp_dirs],
            "fps_source": fps_source, "unused_cameras": unused, "first_frame": first, "last_frame": last,
            "frame_ranges": {c.name: [int(n[0]), int(n[-1])] for c, (n, _) in zip(cams, numbered, strict=True)},
            "frames_missing": missing, "people": people_meta}
    return Session2D(cams, np.stack([p[0] for p in per_cam]), np.stack([p[1] for p in per_cam]),
                     (frames - first) / float(fps), names, skel_name, float(fps), DEFAULT_WORLD_FRAME, meta)


# a frame-number range this many times longer than the longest camera's file list means the
# numbers are not frame numbers (timestamps, say): refused rather than allocating a huge session
_MAX_RANGE_PER_FILE = 10


def _frame_range(folder: Path, cams: list[Camera], numbered) -> tuple[int, int]:
    """(first, last) frame number over all cameras, after checking that every camera's numbers
    overlap the others' and that the range is not mostly empty."""
    lo = [int(n[0]) for n, _ in numbered]
    hi = [int(n[-1]) for n, _ in numbered]
    for c, cam in enumerate(cams):
        others = [i for i in range(len(cams)) if i != c]
        if all(hi[c] < lo[i] or lo[c] > hi[i] for i in others):
            raise InputError(folder, f"the frames of camera {cam.name} ({lo[c]}..{hi[c]}) overlap no other camera's "
                                     "(" + ", ".join(f"{cams[i].name} {lo[i]}..{hi[i]}" for i in others)
                                     + "): frames are matched by the number in the file names, so the keypoint "
                                       "folders must be numbered on one clock (synchronise them first)")
    first, last = min(lo), max(hi)
    most = max(len(f) for _, f in numbered)
    if last - first + 1 > _MAX_RANGE_PER_FILE * most:
        raise InputError(folder, f"frame numbers run from {first} to {last} ({last - first + 1} frames) but the "
                                 f"cameras have at most {most} files: the last number in each file name must be "
                                 "its frame number")
    return first, last


def _common_keypoint_count(folder: Path, kp_dirs: list[Path], files: list[list[Path]]) -> int:
    """The keypoint count per person all cameras' files share; a camera folder that differs is named."""
    counts = [keypoint_count(f) for f in files]
    known = [k for k in counts if k is not None]
    if not known:
        raise InputError(folder, "no person in any keypoint file of any camera, so there is nothing to triangulate")
    # the count most cameras hold (ties: the first camera's) is the reference
    ref = max(dict.fromkeys(known), key=known.count)
    odd = [(d, k) for d, k in zip(kp_dirs, counts, strict=True) if k is not None and k != ref]
    if odd:
        def rel(d: Path) -> str:
            try:
                return str(d.relative_to(folder))
            except ValueError:
                return str(d)
        what = "; ".join(f"{rel(d)} holds {k} keypoints per person" for d, k in odd)
        raise InputError(folder, f"{what}, the other cameras {ref} (every camera must use the same keypoint "
                                 "layout: run the same pose model on all videos)")
    return ref


def session_inputs(path: str | os.PathLike, calibration: str | os.PathLike | None = None) -> list[Path]:
    """The files :func:`load_session` reads for ``path`` (to tell whether a session changed).

    A session ``.npz`` is one file; a Pose2Sim project is its calibration, ``Config.toml``, the
    per-frame JSON files of its keypoint folders and its videos (their frame rate may be used).
    Other files in the folder, such as outputs written inside it, are not inputs.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(p, "session not found (expected a Pose2Sim project folder or a session .npz)")
    files = [Path(calibration) if calibration is not None else find_calibration(p)]
    files += [f for f in (p / "Config.toml",) if f.is_file()]
    if (p / "videos").is_dir():
        files += sorted(f for f in (p / "videos").iterdir() if f.is_file())
    for d in find_keypoint_folders(p):
        files += list_frame_files(d)
    return files


def load_session(path: str | os.PathLike, calibration=None, fps: float | None = None, person: int = 0) -> Session2D:
    """A :class:`Session2D` from a Pose2Sim project folder or a simspine session ``.npz``
    (``person``: which subject of a project whose files hold several people).

    A session ``.npz`` carries its own cameras and frame rate: ``calibration`` (a file) replaces
    its cameras by the same-named ones of that file, and ``fps`` its frame rate (timestamps
    recomputed from the frame numbers), as they do for a project folder."""
    p = Path(path)
    if p.is_file() and p.suffix == ".npz":
        if person != 0:
            raise InputError(p, f"--person {person}: a session .npz holds one subject; --person chooses among the "
                                "people of a Pose2Sim project's keypoint files")
        s = Session2D.load(p)
        if s.n_cameras < 2:
            raise InputError(p, f"{s.n_cameras} camera(s); triangulation needs at least 2")
        if calibration is not None:
            by_name = {c.name: c for c in load_calibration(calibration)}
            missing = [n for n in s.camera_names if n not in by_name]
            if missing:
                raise InputError(calibration, f"no camera {', '.join(missing)} of session {p.name} in this calibration "
                                              f"(it has {', '.join(by_name)})")
            s = dataclasses.replace(s, cameras=[by_name[n] for n in s.camera_names],
                                    meta={**s.meta, "calibration": str(calibration)})
        if fps is not None:
            if not (np.isfinite(fps) and fps > 0):
                raise InputError(p, f"fps must be a positive number, got {fps}")
            # Same frames at another rate: times scale by old/new (from 0 when the old rate is unknown).
            t = (s.timestamps * (s.fps / fps) if np.isfinite(s.fps) and s.fps > 0
                 else np.arange(s.n_frames) / float(fps))
            s = dataclasses.replace(s, fps=float(fps), timestamps=t, meta={**s.meta, "fps_given": float(fps)})
        return s
    if not p.exists():
        raise InputError(p, "session not found (expected a Pose2Sim project folder or a session .npz)")
    return load_pose2sim_session(p, calibration=calibration, fps=fps, person=person)


def choose_person(folder: Path, cams: list[Camera], people, person: int, fps: float):
    """Each camera's (xy (T, K, 2), conf (T, K)) of the subject from ``people`` (per camera the
    (xy (T, P, K, 2), conf (T, P, K), count (T,)) of :func:`read_openpose_people_folder`), and a
    JSON summary. One person per file at most: that person; several in any frame: association."""
    counts = np.stack([c for _, _, c in people])  # (C, T)
    several = int((counts > 1).any(0).sum())
    if several == 0:
        if person != 0:
            raise InputError(folder, f"--person {person} asked for, but no keypoint file holds more than one person")
        return [(xy[:, 0], conf[:, 0]) for xy, conf, _ in people], {"person": 0, "frames_with_several_people": 0}
    from simspine.multiview.association import associate

    P = max(xy.shape[1] for xy, _, _ in people)
    uv = np.stack([np.pad(xy, ((0, 0), (0, P - xy.shape[1]), (0, 0), (0, 0)), constant_values=np.nan)
                   for xy, _, _ in people])
    conf = np.stack([np.pad(cf, ((0, 0), (0, P - cf.shape[1]), (0, 0))) for _, cf, _ in people])
    try:
        res = associate(cams, uv, conf, person=person, fps=fps)
    except InputError as e:
        raise InputError(folder, e.problem) from None
    meta = {"person": int(person), "frames_with_several_people": several,
            "most_people_in_a_file": int(counts.max()), "association": res.summary(counts)}
    meta["association"]["chosen_per_camera"] = {
        c.name: {"frames_with_subject": int((res.chosen[i] >= 0).sum()),
                 "not_first_in_file": int((res.chosen[i] > 0).sum())} for i, c in enumerate(cams)}
    return [(res.keypoints[i], res.conf[i]) for i in range(len(cams))], meta
