"""OpenPose-style 2D keypoint JSON: one file per frame, one folder per camera.

Each file is ``{"version": 1.3, "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}]}``
with pixel coordinates and a confidence per keypoint; OpenPose (and Pose2Sim) write ``0, 0, 0`` for a
keypoint that was not found, which is read here as NaN with confidence 0.

A file's frame is the last number in its name (as Pose2Sim orders them), e.g. ``cam01_000012.json``
is frame 12: frames are identified by that number, never by a file's position in the folder, so a
missing file is a missing frame (NaN / confidence 0 at its own time).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.fileio import write_text_atomic


def last_number(name: str) -> int | None:
    """The last run of digits in ``name`` as an int (None if there is none): Pose2Sim's order key."""
    nums = re.findall(r"\d+", name)
    return int(nums[-1]) if nums else None


def by_last_number(paths) -> list[Path]:
    """``paths`` ordered by the last number in their name (names without one last), then by name."""
    return sorted(paths, key=lambda p: (last_number(p.name) is None, last_number(p.name) or 0, p.name))


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The ``*.json`` files of ``folder`` in frame order (last number in the name, then name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "keypoint folder not found")
    files = [p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()]
    return by_last_number(files)


def numbered_frame_files(folder: str | os.PathLike) -> tuple[np.ndarray, list[Path]]:
    """The ``*.json`` files of ``folder`` and their frame numbers (last number in the name), by number.

    Returns:
        ``(numbers (N,) int, files)``, increasing numbers.
    Raises:
        InputError (naming the folder): no such folder, no ``.json`` files, a file without a number
            in its name (its frame is unknown), or two files with the same number.
    """
    folder = Path(folder)
    files = list_frame_files(folder)
    if not files:
        raise InputError(folder, "no .json keypoint files in the folder")
    unnumbered = [p.name for p in files if last_number(p.name) is None]
    if unnumbered:
        raise InputError(folder, f"{len(unnumbered)} keypoint file(s) without a frame number in the name "
                                 f"(e.g. {unnumbered[0]!r}); name them <camera>_<frame>.json, the frame being "
                                 "the video frame's number")
    numbers = np.array([last_number(p.name) for p in files], dtype=np.int64)
    dup = np.flatnonzero(np.diff(numbers) == 0)
    if dup.size:
        i = int(dup[0])
        raise InputError(folder, f"two keypoint files for frame {numbers[i]}: {files[i].name} and {files[i + 1].name}")
    return numbers, files


def keypoint_count(files) -> int | None:
    """Keypoints per person in the first of ``files`` that holds a person (None if none does)."""
    for f in files:
        xy, _ = read_openpose_frame(f)
        if xy is not None:
            return int(xy.shape[0])
    return None


def read_openpose_frame(path: str | os.PathLike, n_keypoints: int | None = None):
    """Read one frame file, keeping one person.

    Args:
        path: the JSON file.
        n_keypoints: expected keypoint count K; inferred from the file when None.
    Returns:
        ``(xy (K, 2) px, conf (K,))`` of the person with the highest mean confidence, NaN/0 for
        undetected keypoints; ``(None, None)`` when the frame has no people and K is unknown.
        (Sessions with several people per file go through :mod:`simspine.multiview.association`
        instead, which picks the subject by cross-view and temporal agreement.)
    Raises:
        InputError: as :func:`read_openpose_people` (every error names the file).
    """
    xy, conf = read_openpose_people(path, n_keypoints)
    if xy is None:
        return None, None
    if len(xy) == 0:
        return np.full((xy.shape[1], 2), np.nan), np.zeros(xy.shape[1])
    best = int(np.argmax(conf.mean(axis=1)))  # the first of equally confident people
    return xy[best], conf[best]


def read_openpose_folder(folder: str | os.PathLike, n_keypoints: int | None = None, frames=None):
    """Read a camera's folder of per-frame JSON files onto a frame-number axis.

    Args:
        folder: the camera's folder.
        n_keypoints: expected keypoint count K; default: that of the first file with a person.
        frames: (T,) frame numbers to read; default every number from the folder's first to its
            last (``numbers.min() .. numbers.max()``). A number without a file is a missing frame.
    Returns:
        ``(xy (T, K, 2) px, conf (T, K))``, row ``i`` being frame ``frames[i]``; missing frames and
        frames with nobody are NaN / 0.
    Raises:
        InputError: see :func:`numbered_frame_files`; no person in any file while K is unknown, or a
            bad file (see :func:`read_openpose_frame`); every error names the file or folder.
    """
    # One reader of the folder (read_openpose_people_folder); per frame the most confident person,
    # as read_openpose_frame keeps (padding people have confidence 0, so they never win over one).
    xy, conf, _count = read_openpose_people_folder(folder, n_keypoints, frames)
    best = np.argmax(conf.mean(axis=2), axis=1)
    t = np.arange(xy.shape[0])
    xy_all, conf_all = xy[t, best], conf[t, best]
    return xy_all, conf_all


def write_openpose_folder(folder: str | os.PathLike, xy: np.ndarray, conf: np.ndarray, prefix: str = "",
                          start: int = 0) -> list[Path]:
    """Write per-frame OpenPose JSON files ``<prefix>_<frame:06d>.json`` (one person per frame).

    Args:
        folder: output folder (created).
        xy: (T, K, 2) pixel coordinates; NaN for missing keypoints (written as 0, 0, 0).
        conf: (T, K) confidences in [0, 1].
        prefix: file name prefix, by convention the camera name (default: the folder name without
            ``_json``).
        start: number of the first frame.
    Returns:
        the files written. A frame with no finite keypoint gets an empty ``people`` list.
    """
    xy = np.asarray(xy, dtype=float)
    conf = np.asarray(conf, dtype=float)
    if xy.ndim != 3 or xy.shape[2] != 2 or conf.shape != xy.shape[:2]:
        raise InputError(folder, f"keypoints must be (T, K, 2) with confidences (T, K); got {xy.shape} and {conf.shape}")
    folder = Path(folder)
    prefix = prefix or re.sub(r"_json$", "", folder.name)
    out = []
    for i in range(xy.shape[0]):
        ok = np.isfinite(xy[i]).all(-1) & np.isfinite(conf[i]) & (conf[i] > 0)
        vals = np.zeros((xy.shape[1], 3))
        vals[ok, :2] = xy[i, ok]
        vals[ok, 2] = conf[i, ok]
        people = []
        if ok.any():
            people.append({"person_id": [-1], "pose_keypoints_2d": [float(v) for v in vals.ravel()],
                           "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
                           "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
                           "hand_right_keypoints_3d": []})
        path = folder / f"{prefix}_{start + i:06d}.json"
        write_text_atomic(path, json.dumps({"version": 1.3, "people": people}))
        out.append(path)
    return out


# ---- several people per frame -----------------------------------------------------------------
def read_openpose_people(path: str | os.PathLike, n_keypoints: int | None = None):
    """Every person of one frame file, in the file's order.

    Args:
        path: the JSON file.
        n_keypoints: expected keypoint count K; inferred from the file when None.
    Returns:
        ``(xy (P, K, 2) px, conf (P, K))`` (NaN / 0 for undetected keypoints; P = 0 for a file with
        nobody); ``(None, None)`` when the file has nobody and K is unknown.
    Raises:
        InputError: unreadable or non-JSON file, no ``people`` list, a ``pose_keypoints_2d`` whose
            length is not ``3 * K``, or non-numeric values (every error names the file).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(path, f"cannot read keypoint file: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("people", None), list):
        raise InputError(path, "no 'people' list: not an OpenPose keypoint file")
    rows = []
    for i, person in enumerate(data["people"]):
        kp = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if kp is None:
            raise InputError(path, f"people[{i}] has no 'pose_keypoints_2d'")
        try:
            arr = np.asarray(kp, dtype=float)
        except (TypeError, ValueError):
            raise InputError(path, f"people[{i}].pose_keypoints_2d holds non-numeric values") from None
        if arr.ndim != 1 or arr.size == 0 or arr.size % 3 != 0 or (n_keypoints is not None and arr.size != 3 * n_keypoints):
            expected = f"3 x {n_keypoints} = {3 * n_keypoints}" if n_keypoints is not None else "a non-zero multiple of 3"
            raise InputError(path, f"people[{i}].pose_keypoints_2d has {arr.size} values, expected {expected} "
                                   "([x, y, confidence] per keypoint)")
        n_keypoints = arr.size // 3
        rows.append(arr.reshape(-1, 3))
    if n_keypoints is None:
        return None, None
    if not rows:
        return np.zeros((0, n_keypoints, 2)), np.zeros((0, n_keypoints))
    arr = np.stack(rows)
    conf = np.nan_to_num(arr[..., 2], nan=0.0)
    missing = ~(conf > 0) | ~np.isfinite(arr[..., :2]).all(-1)
    xy = arr[..., :2].copy()
    xy[missing] = np.nan
    conf[missing] = 0.0
    return xy, conf


def read_openpose_people_folder(folder: str | os.PathLike, n_keypoints: int | None = None, frames=None):
    """Every person of every frame of a camera's folder, on the frame-number axis of
    :func:`read_openpose_folder` (a frame is the number in its file name).

    Args:
        folder: the camera's folder.
        n_keypoints: expected keypoint count K; default: that of the first file with a person.
        frames: (T,) frame numbers to read; default the folder's first to last number.
    Returns:
        ``(xy (T, P, K, 2) px, conf (T, P, K), count (T,))`` with P the most people in any frame
        (at least 1); person ``p`` of frame ``i`` is the ``p``-th in the file, NaN / 0 padding
        beyond ``count[i]`` people and for missing frames.
    Raises:
        InputError: as :func:`read_openpose_folder`.
    """
    numbers, files = numbered_frame_files(folder)
    frames = np.arange(numbers[0], numbers[-1] + 1) if frames is None else np.asarray(frames, dtype=np.int64)
    row = {int(n): i for i, n in enumerate(frames)}
    loaded = []
    for n, f in zip(numbers, files, strict=True):
        if int(n) not in row:
            continue
        xy, conf = read_openpose_people(f, n_keypoints)
        if xy is not None and n_keypoints is None:
            n_keypoints = xy.shape[1]
        loaded.append((row[int(n)], xy, conf))
    if n_keypoints is None:
        raise InputError(folder, "no person in any frame, so the keypoint count is unknown (pass n_keypoints)")
    T = len(frames)
    P = max([1] + [len(xy) for _, xy, _ in loaded if xy is not None])
    xy_all = np.full((T, P, n_keypoints, 2), np.nan)
    conf_all = np.zeros((T, P, n_keypoints))
    count = np.zeros(T, dtype=np.int64)
    for i, xy, conf in loaded:
        if xy is not None and len(xy):
            xy_all[i, :len(xy)], conf_all[i, :len(xy)], count[i] = xy, conf, len(xy)
    return xy_all, conf_all, count
