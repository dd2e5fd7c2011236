"""One camera's OpenPose JSON folder, written into a hidden temporary folder and renamed when complete.

Same file form as :func:`simspine.io.openpose.write_openpose_folder` (``<camera>_<frame:06d>.json``,
``{"version": 1.3, "people": [...]}``, 0, 0, 0 for a keypoint not found), but with every detected
person of a frame, most confident first, so that the reader can choose the subject.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from simspine.io.openpose import last_number


def frame_file_name(camera: str, frame: int) -> str:
    """``<camera>_<frame:06d>.json``: the frame number is the last number in the name."""
    return f"{camera}_{frame:06d}.json"


def frame_json(xy: np.ndarray, conf: np.ndarray) -> str:
    """One frame's JSON text.

    Args:
        xy: (P, K, 2) px per person; NaN where a keypoint was not found.
        conf: (P, K) confidences; ≤ 0 means not found.
    Returns:
        the OpenPose document; a keypoint not found is written 0, 0, 0, and a person with no
        keypoint found is left out.
    """
    people = []
    for p in range(xy.shape[0]):
        ok = np.isfinite(xy[p]).all(-1) & np.isfinite(conf[p]) & (conf[p] > 0)
        if not ok.any():
            continue
        vals = np.zeros((xy.shape[1], 3))
        vals[ok, :2] = xy[p, ok]
        vals[ok, 2] = conf[p, ok]
        people.append({"person_id": [-1], "pose_keypoints_2d": [round(float(v), 3) for v in vals.ravel()],
                       "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
                       "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
                       "hand_right_keypoints_3d": []})
    return json.dumps({"version": 1.3, "people": people})


def is_complete(folder: Path, camera: str, n_frames: int) -> bool:
    """Whether ``folder`` holds exactly frames 0 … n_frames-1 of ``camera`` (by the number in the name)."""
    if not folder.is_dir():
        return False
    nums = set()
    for f in folder.iterdir():
        if f.suffix.lower() == ".json" and f.name.startswith(f"{camera}_"):
            n = last_number(f.stem)
            if n is not None:
                nums.add(n)
    return nums == set(range(n_frames))


def keypoint_count(folder: Path) -> int | None:
    """Keypoints per person in the first frame file of ``folder`` that has a person (None: no person
    anywhere, or a file that is not OpenPose JSON)."""
    for f in sorted(folder.glob("*.json")):
        try:
            people = json.loads(f.read_text(encoding="utf-8")).get("people") or []
            if people:
                return len(people[0]["pose_keypoints_2d"]) // 3
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            return None
    return None


class CameraFolderWriter:
    """Write frames into ``.<name>.partial`` next to ``folder``; :meth:`commit` renames it to ``folder``.

    An interrupted run leaves only the hidden partial folder, which the next run removes; the
    camera's folder is therefore either absent, the old one, or complete.
    """

    def __init__(self, folder: str | os.PathLike, camera: str):
        self.folder = Path(folder)
        self.camera = camera
        self.partial = self.folder.parent / f".{self.folder.name}.partial"
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir()
        self.n_written = 0

    def write(self, frame: int, xy: np.ndarray, conf: np.ndarray) -> None:
        """Write frame number ``frame``: (P, K, 2) px and (P, K) confidences."""
        (self.partial / frame_file_name(self.camera, frame)).write_text(frame_json(xy, conf), encoding="utf-8")
        self.n_written += 1

    def commit(self) -> Path:
        """Replace ``folder`` by the written frames; return ``folder``."""
        old = self.folder.parent / f".{self.folder.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(self.partial, self.folder)
        if old.exists():
            shutil.rmtree(old)
        return self.folder

    def discard(self) -> None:
        """Remove the partial folder (after an error)."""
        shutil.rmtree(self.partial, ignore_errors=True)
