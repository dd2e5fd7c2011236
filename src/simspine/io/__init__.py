"""File formats: TRC and MOT/STO (OpenSim), OpenPose-style 2D keypoint JSON, compact session files."""
