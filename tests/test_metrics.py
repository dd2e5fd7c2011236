"""Metrics: values checked against constructions with known answers."""

import numpy as np
from scipy.spatial.transform import Rotation

from simspine.metrics import angle_rmse, mpjpe, p_mpjpe, per_joint_error, per_region


def test_mpjpe_known_offset_and_nan_ignored():
    gt = np.zeros((4, 37, 3))
    pred = gt.copy()
    pred[..., 0] += 0.003  # 3 mm everywhere
    pred[0, 5] = np.nan
    assert abs(mpjpe(pred, gt) - 3.0) < 1e-9
    pj = per_joint_error(pred, gt)
    assert pj.shape == (37,) and np.allclose(pj, 3.0)


def test_p_mpjpe_removes_similarity_but_not_shape_error():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(6, 37, 3))
    R = Rotation.random(6, random_state=1).as_matrix()
    pred = 1.7 * np.einsum("nij,nkj->nki", R, gt) + rng.normal(size=(6, 1, 3))
    assert p_mpjpe(pred, gt) < 1e-6
    assert mpjpe(pred, gt) > 100
    # a non-rigid error survives alignment
    noisy = gt + rng.normal(scale=0.01, size=gt.shape)
    assert 0 < p_mpjpe(noisy, gt) <= mpjpe(noisy, gt)


def test_per_region_and_angles():
    gt = np.zeros((2, 37, 3))
    pred = gt.copy()
    pred[:, [19, 26, 27, 28], 1] = 0.010  # lumbar points off by 10 mm
    r = per_region(pred, gt)
    assert abs(r["lumbar"] - 10) < 1e-9 and r["thoracic"] == 0 and r["cervical"] == 0
    assert abs(angle_rmse([179.0, 10.0], [-179.0, 12.0]) - 2.0) < 1e-12
