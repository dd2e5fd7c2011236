"""MediaPipe BlazePose (``mediapipe==0.10.21``, full model bundled in the wheel) → SpineTrack-37.

BlazePose gives 33 landmarks; the SpineTrack-37 points that correspond are filled, everything else
(Head, Neck, Hip, small toes, the spine points) stays 0, 0, 0. SpineTrack's ``Hip`` is the sacrum,
not the pelvis centre, and its ``Neck`` is C7, not the mid-shoulders, so neither is synthesised from
BlazePose's hips or shoulders. Confidence is the landmark's visibility.

Where these points sit against the model's markers (measured on Pose2Sim's Demo_SinglePerson,
4 cameras, triangulated by ``simspine annotate``; model = the generic SpineTrack-37 marker set):

* Face (Nose, eyes, ears): not usable for scaling, and poor IK markers. The demo's faces are
  pixelated and the subject wears a swimming cap over the ears; the camera behind the subject
  puts the nose and eyes on the back of the head. Triangulated: ears 0.093 m apart, eyes
  0.046-0.050 m, nose to ear 0.075-0.084 m (model: 0.156, 0.062, 0.141 m; the model's ears are
  at the external acoustic meatus), and the whole face cluster 55-75 mm in front of where the
  fitted model's is. Scaling replaces the resulting head factor (0.61 against a body at 0.97) as
  an outlier (:mod:`simspine.biomech.scaling`). After IK these markers keep the largest errors
  (the plausibility check names them): RMS nose 50, eyes 57-62, ears 90 mm with the head at the
  torso's factor (71, 73-78, 78-81 mm with head 0.61; other markers unchanged). IK weight 0.2 on
  the five face points lowers those (34-72 mm) but lets the trunk drift (shoulders 31 -> 40 mm,
  hips 19 -> 24 mm): the face is the only head data and steadies the trunk's 4 markers, so it
  keeps full weight.
* Hips: BlazePose's hips lie close to the hip joint centres: 0.179 m apart on the demo, against
  0.167 m between the generic model's joint centres and 0.211 m between its LHip/RHip markers
  (Pose2Sim's HALPE_26 places, 22 mm lateral of and 15 mm below the joint centres, where
  OpenPose-type detectors put the hip). So the pelvis factor measured from them (0.84 on the
  demo, -14% against the median factor) reflects the landmark definition, not a narrow pelvis,
  and shrinks the pelvis (joint-centre spacing 0.14 m). It is within the 30% outlier band and
  is used; ``simspine ik/annotate --height`` does not change a measured factor. Give the
  pelvis factor yourself (``simspine ik --scale-factors``) if the subject's pelvis matters.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from simspine.errors import InputError

INSTALL = 'pip install -e ".[mediapipe]" && pip install --no-deps mediapipe==0.10.21'

# SpineTrack-37 name -> BlazePose landmark index (mp.solutions.pose.PoseLandmark). Eyes are the eye
# centres (2, 5), not the inner/outer corners; BlazePose's "foot index" is the tip of the big toe.
BLAZEPOSE_TO_SPINETRACK: dict[str, int] = {
    "Nose": 0,
    "LEye": 2, "REye": 5,
    "LEar": 7, "REar": 8,
    "LShoulder": 11, "RShoulder": 12,
    "LElbow": 13, "RElbow": 14,
    "LWrist": 15, "RWrist": 16,
    "LHip": 23, "RHip": 24,
    "LKnee": 25, "RKnee": 26,
    "LAnkle": 27, "RAnkle": 28,
    "LHeel": 29, "RHeel": 30,
    "LBigToe": 31, "RBigToe": 32,
}


def mapping_indices(names) -> tuple[np.ndarray, np.ndarray]:
    """``(target, source)`` index arrays: SpineTrack-37 position ``target[i]`` takes BlazePose landmark
    ``source[i]``; ``names`` is the SpineTrack-37 name list."""
    names = list(names)
    tgt = np.array([names.index(n) for n in BLAZEPOSE_TO_SPINETRACK], dtype=int)
    src = np.array(list(BLAZEPOSE_TO_SPINETRACK.values()), dtype=int)
    return tgt, src


def landmarks_to_spinetrack(landmarks: np.ndarray, width: int, height: int, names) -> tuple[np.ndarray, np.ndarray]:
    """Map BlazePose landmarks of one person to SpineTrack-37.

    Args:
        landmarks: (33, 3) normalised x, y (fractions of the image width / height) and visibility.
        width, height: image size in px.
        names: SpineTrack-37 names (their order is the output order).
    Returns:
        ``(xy (37, 2) px, conf (37,))``; unmapped keypoints are NaN with confidence 0.
    """
    landmarks = np.asarray(landmarks, dtype=float)
    if landmarks.shape != (33, 3):
        raise ValueError(f"expected (33, 3) BlazePose landmarks, got {landmarks.shape}")
    tgt, src = mapping_indices(names)
    xy = np.full((len(names), 2), np.nan)
    conf = np.zeros(len(names))
    xy[tgt] = landmarks[src, :2] * np.array([width, height], dtype=float)
    conf[tgt] = np.clip(landmarks[src, 2], 0.0, 1.0)
    return xy, conf


def _import_mediapipe():
    try:
        import mediapipe as mp
    except ImportError as e:
        raise InputError(None, f"the mediapipe backend is not installed ({e}); install it with: {INSTALL}") from None
    return mp


class _QuietStderr:
    """Point file descriptor 2 at /dev/null until :meth:`restore`: mediapipe's C++ graph threads print
    start-up messages (TFLite delegate, "feedback manager", absl) at moments of their own choosing,
    that no environment variable turns off and that say nothing to the user. Python exceptions are
    raised as usual and printed after the descriptor is restored."""

    def __init__(self):
        self._saved = None
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
        except (OSError, ValueError):  # no real descriptor 2: nothing to quieten
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def restore(self) -> None:
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None


class MediaPipeBackend:
    """BlazePose full (``model_complexity=1``), one tracking ``Pose`` object per camera."""

    name = "mediapipe"

    def __init__(self, names, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        self._mp = _import_mediapipe()
        self.names = list(names)
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence

    def camera(self) -> _CameraDetector:
        """A detector for one camera's frames, in order (BlazePose tracks from frame to frame)."""
        # model_complexity=1 is the model bundled in the wheel; 0 and 2 try to download theirs.
        # stderr stays quiet while the camera runs (a progress bar should write to a duplicate of it).
        quiet = _QuietStderr()
        try:
            pose = self._mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                                min_detection_confidence=self.min_detection_confidence,
                                                min_tracking_confidence=self.min_tracking_confidence)
        except BaseException:
            quiet.restore()
            raise
        return _CameraDetector(pose, self.names, quiet)


class _CameraDetector:
    def __init__(self, pose, names, quiet: _QuietStderr):
        self._pose = pose
        self._names = names
        self._quiet = quiet

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) BGR frame → ``(xy (P, 37, 2) px, conf (P, 37))`` with P = 0 or 1."""
        import cv2

        h, w = frame_bgr.shape[:2]
        res = self._pose.process(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
        K = len(self._names)
        if not res.pose_landmarks:
            return np.zeros((0, K, 2)), np.zeros((0, K))
        lm = np.array([(p.x, p.y, p.visibility) for p in res.pose_landmarks.landmark])
        xy, conf = landmarks_to_spinetrack(lm, w, h, self._names)
        return xy[None], conf[None]

    def close(self) -> None:
        try:
            self._pose.close()
        finally:
            self._quiet.restore()
