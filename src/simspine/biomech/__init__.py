"""Biomechanical core: the spine-aware OpenSim model, subject scaling, inverse and forward kinematics.

Modules: ``model`` (prepare/cache the model with the SpineTrack-37 marker set), ``fk`` (coordinates
-> keypoints and vertebral rotations), ``scaling`` (subject scaling), ``ik`` (inverse kinematics),
``pipeline`` (markers TRC -> scaled model, motion, keypoints, rotations).
"""
