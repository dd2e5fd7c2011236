"""2D keypoint detection on a session's videos: ``simspine detect``.

- :mod:`simspine.detect.video`: finding a session's videos, reading frames, frame count, fps, size.
- :mod:`simspine.detect.mediapipe_backend`: BlazePose (mediapipe 0.10.21) mapped to SpineTrack-37.
- :mod:`simspine.detect.spinepose_backend`: SpinePose's top-down ONNX models (person detector + SimCC
  pose model) run with onnxruntime from local files.
- :mod:`simspine.detect.writer`: one camera's OpenPose JSON folder, written atomically.
- :mod:`simspine.detect.run`: :func:`detect_session`, resumable per camera.
"""

from simspine.detect.run import BACKENDS, CameraResult, detect_session

__all__ = ["BACKENDS", "CameraResult", "detect_session"]
