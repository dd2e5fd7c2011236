"""A session's videos: one file per camera in ``SESSION/videos/<camera>.<mp4|avi|mov|mkv>``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video: frame count, frame rate (Hz), size (px)."""

    path: Path
    n_frames: int
    fps: float | None
    width: int
    height: int


def find_videos(session: str | os.PathLike) -> dict[str, Path]:
    """``{camera: video path}`` for ``session/videos/``, cameras in name order.

    Raises:
        InputError: no ``videos`` folder, no video in it, or two videos for the same camera.
    """
    folder = Path(session) / "videos"
    if not folder.is_dir():
        raise InputError(folder, "no videos folder: put one video per camera there, named <camera>.mp4 "
                                 f"(or {', '.join(VIDEO_SUFFIXES[1:])})")
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in VIDEO_SUFFIXES or f.name.startswith("."):
            continue
        if f.stem in found:
            raise InputError(folder, f"two videos for camera {f.stem!r} ({found[f.stem].name}, {f.name}): keep one")
        found[f.stem] = f
    if not found:
        raise InputError(folder, f"no video files ({', '.join(VIDEO_SUFFIXES)}) in the folder")
    return found


def _open(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(path, "cannot open the video (unreadable file or unsupported codec)")
    return cap


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate and size from the video's header.

    The frame count comes from the container; when it does not give one, the frames are counted by
    reading them (slow, but a count is needed to know whether a camera is complete).

    Raises:
        InputError: the video cannot be opened or has no frame.
    """
    import cv2

    path = Path(path)
    cap = _open(path)
    try:
        n = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if n <= 0:
            while cap.grab():
                n += 1
    finally:
        cap.release()
    if n <= 0:
        raise InputError(path, "the video has no frames")
    return VideoInfo(path, n, fps if np.isfinite(fps) and fps > 0 else None, w, h)


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the video's frames in order as (H, W, 3) uint8 BGR arrays (OpenCV's channel order)."""
    path = Path(path)
    cap = _open(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()
