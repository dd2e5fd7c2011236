"""simspine: anatomically valid 3D spine motion from multi-view video (SimSpine).

Pipeline: 2D keypoints per camera -> robust triangulation -> filtering -> merge with body
markers -> subject-scaled OpenSim model -> inverse kinematics -> virtual vertebral markers.
Units are metres and seconds; model-space data is in OpenSim's ground frame (Y up).
Keypoint arrays follow SpineTrack-37 order (see :mod:`simspine.skeletons`).
"""

__version__ = "0.1.0"

from simspine.errors import InputError, SimspineError  # noqa: E402,F401
