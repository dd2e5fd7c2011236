"""``detect_session``: every camera's video → OpenPose JSON per frame, resumable per camera."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from simspine.detect.video import find_videos, iter_frames, video_info
from simspine.detect.writer import CameraFolderWriter, is_complete, keypoint_count
from simspine.errors import InputError

BACKENDS = ("spinepose", "mediapipe")
N_KEYPOINTS = 37  # SpineTrack-37


@dataclass
class CameraResult:
    """What happened to one camera: frames written, detection speed, share of frames with a person."""

    camera: str
    folder: Path
    n_frames: int
    skipped: bool
    seconds: float = 0.0
    frames_with_person: int = 0

    @property
    def frames_per_second(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def share_with_person(self) -> float:
        return self.frames_with_person / self.n_frames if self.n_frames else 0.0


def _duplicate_stderr():
    """A text stream on a duplicate of file descriptor 2, or None where stderr has no descriptor."""
    try:
        sys.stderr.flush()
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    except (OSError, ValueError, AttributeError):
        return None


def make_backend(name: str, pose_model=None, det_model=None, no_detector: bool = False, max_people: int = 10):
    """The backend object for ``name`` (one of :data:`BACKENDS`); it has ``camera()`` → per-frame detector."""
    from simspine.skeletons import spinetrack37

    names = list(spinetrack37().names)
    if name == "mediapipe":
        if pose_model or det_model or no_detector:
            raise InputError(None, "--pose-model, --det-model and --no-detector are options of the spinepose backend")
        from simspine.detect.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(names)
    if name == "spinepose":
        from simspine.detect.spinepose_backend import SpinePoseBackend

        return SpinePoseBackend(pose_model, det_model, no_detector=no_detector, max_people=max_people,
                                n_keypoints=len(names))
    raise InputError(None, f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


def detect_session(session: str | os.PathLike, backend="mediapipe", overwrite: bool = False, progress: bool = True,
                   log=print, **backend_options) -> list[CameraResult]:
    """Detect 2D keypoints in each camera's video of a Pose2Sim-style session.

    Reads ``SESSION/videos/<camera>.<mp4|avi|mov|mkv>`` and writes ``SESSION/pose/<camera>_json/
    <camera>_<frame:06d>.json`` (OpenPose JSON, SpineTrack-37 order, pixels; frame numbers from 0).
    A camera whose folder already holds every frame of its video is skipped unless ``overwrite``;
    a camera's folder appears only when all its frames are written. A folder that is neither (another
    detector's keypoints, files removed by hand) is left alone with an error unless ``overwrite``.

    Args:
        session: the session folder.
        backend: a name of :data:`BACKENDS` or a backend object (``camera()`` → callable frame →
            ``(xy (P, 37, 2) px, conf (P, 37))``).
        overwrite: detect again even where a complete folder exists.
        progress: show a tqdm bar per camera (on stderr).
        log: where one line per camera goes.
        backend_options: ``pose_model``, ``det_model``, ``no_detector``, ``max_people`` (spinepose).
    Returns:
        one :class:`CameraResult` per camera, in camera-name order.
    Raises:
        InputError: no videos, an unreadable video, a missing model file or backend, a keypoint
            folder that this command did not complete.
    """
    from tqdm import tqdm

    session = Path(session)
    if not session.is_dir():
        raise InputError(session, "session folder not found")
    videos = find_videos(session)
    infos = {cam: video_info(path) for cam, path in videos.items()}
    pose_dir = session / "pose"
    if pose_dir.exists() and not pose_dir.is_dir():
        raise InputError(pose_dir, "exists and is not a folder")
    todo, results = [], {}
    for cam in videos:
        folder, n = pose_dir / f"{cam}_json", infos[cam].n_frames
        if overwrite or not folder.exists():
            todo.append(cam)
        elif not folder.is_dir():
            raise InputError(folder, "exists and is not a folder")
        elif is_complete(folder, cam, n) and keypoint_count(folder) in (None, N_KEYPOINTS):
            results[cam] = CameraResult(cam, folder, n, skipped=True)
            log(f"{cam}: pose/{cam}_json already holds all {n} frames, skipped (--overwrite detects again)")
        else:
            # Not written by an interrupted run (those leave no folder): someone else's keypoints, kept.
            k = keypoint_count(folder)
            layout = "" if k in (None, N_KEYPOINTS) else f"; {k} keypoints per person"
            raise InputError(folder, f"holds keypoints that are not a complete SpineTrack-37 detection of "
                                     f"{videos[cam].name} ({n} frames){layout}: move the folder away or pass "
                                     "--overwrite")
    if todo:
        be = make_backend(backend, **backend_options) if isinstance(backend, str) else backend
        if hasattr(be, "describe"):
            log(f"{be.name}: {be.describe()}")
        for cam in todo:
            info = infos[cam]
            folder = pose_dir / f"{cam}_json"
            writer = CameraFolderWriter(folder, cam)
            # The bar writes to a duplicate of stderr: a backend may silence descriptor 2 while it runs.
            stream = _duplicate_stderr() if progress else None
            try:
                detector = be.camera()
            except BaseException:
                writer.discard()
                if stream is not None:
                    stream.close()
                raise
            n = with_person = 0
            t0 = time.perf_counter()
            try:
                bar = tqdm(total=info.n_frames, desc=cam, unit="frame", disable=not progress,
                           file=stream or sys.stderr, leave=False)
                with bar:
                    for frame in iter_frames(info.path):
                        xy, conf = detector(frame)
                        writer.write(n, xy, conf)
                        with_person += int((conf > 0).any())
                        n += 1
                        bar.update(1)
            except BaseException:
                writer.discard()
                raise
            finally:
                detector.close()
                if stream is not None:
                    stream.close()
            seconds = time.perf_counter() - t0
            if n == 0:
                writer.discard()
                raise InputError(info.path, "no frame could be decoded")
            if n != info.n_frames:
                # Containers that only estimate their frame count (mkv, some mp4) can be off; the frames
                # decoded are what the video holds, so they are kept. Completeness is judged by the
                # header's count, so a later run detects this camera again.
                log(f"{cam}: warning: the video's header says {info.n_frames} frames but {n} were decoded; "
                    "kept the decoded frames (a re-run will detect this camera again)")
            writer.commit()
            r = CameraResult(cam, folder, n, skipped=False, seconds=seconds, frames_with_person=with_person)
            results[cam] = r
            log(f"{cam}: {n} frames ({info.width}x{info.height}) in {seconds:.1f} s, "
                f"{r.frames_per_second:.1f} frames/s, a person in {100 * r.share_with_person:.0f}% of frames "
                f"-> pose/{cam}_json")
    return [results[c] for c in videos]
