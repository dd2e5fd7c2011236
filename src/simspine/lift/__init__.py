"""Monocular 3D lifting baselines (paper §4.3, Tab. 5–6): SimpleBaseline3D in PyTorch.

* :mod:`simspine.lift.data` — samples from a dataset store (2D per camera → camera-frame 3D),
  keypoint variants (``spine``: the 15 spine-centric keypoints, ``full``: all 37), the per-joint
  normalisation (:class:`~simspine.lift.data.Normalizer`; numpy only).
* :mod:`simspine.lift.model` — the network, training, checkpoints, ONNX export (needs
  ``pip install -e ".[lift]"``: torch, onnx, onnxruntime).
* :mod:`simspine.lift.evaluate` — Tab. 5 / Tab. 6 figures, the mean-pose reference.
"""
