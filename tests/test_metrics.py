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


# ---- issue 13: the shared metrics --------------------------------------------------------------
from simspine.metrics import (  # noqa: E402
    breakdown,
    coco_oks,
    n_mpjpe,
    pck,
    pck_auc,
    procrustes_align,
    regions,
    root_relative,
    root_relative_mpjpe,
    velocity_error,
)
from simspine.skeletons import spinetrack37  # noqa: E402


def _skeleton(T=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=0.3, size=(T, 37, 3)) + np.array([0, 1.0, 0])


def test_rigid_rotation_scale_shift_gives_p_mpjpe_zero_and_reflection_is_not_removed():
    gt = _skeleton()
    R = Rotation.random(len(gt), random_state=4).as_matrix()
    pred = 0.6 * np.einsum("nij,nkj->nki", R, gt) + np.array([1.0, -2.0, 0.5])
    assert p_mpjpe(pred, gt) < 1e-9 and mpjpe(pred, gt) > 100
    # a mirror image is not a rotation: the aligner must not reflect (the error stays large)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, gt) > 50
    aligned = procrustes_align(mirrored, gt)
    # the proper-rotation optimum keeps the handedness: det of the fitted map is positive
    A = np.linalg.lstsq(np.c_[mirrored[0] - mirrored[0].mean(0)], aligned[0] - aligned[0].mean(0), rcond=None)[0]
    assert np.linalg.det(A) > 0


def test_root_relative_and_n_mpjpe():
    gt = _skeleton()
    assert np.allclose(root_relative(gt)[:, 19], 0)
    shifted = gt + np.array([0.5, 0.1, -0.2])  # translation only: root-relative error 0, world error 548 mm
    assert root_relative_mpjpe(shifted, gt) < 1e-9 and abs(mpjpe(shifted, gt) - 1000 * np.sqrt(0.3)) < 1e-9
    rr = root_relative(gt)
    scaled = 1.3 * rr + np.array([2.0, 0, 0])  # scaled about the root and moved
    assert n_mpjpe(scaled, gt) < 1e-9
    assert root_relative_mpjpe(scaled, gt) > 50
    # not a pure scale: compare with the scale found by a 1-D numerical least-squares search
    from scipy.optimize import minimize_scalar

    pred = 0.9 * rr
    pred[:, 0, 0] += 0.010
    ref = []
    for p, g in zip(pred, rr, strict=True):
        s = minimize_scalar(lambda s, p=p, g=g: ((s * p - g) ** 2).sum(), bounds=(0.1, 10), method="bounded",
                            options={"xatol": 1e-12}).x
        ref.append(np.linalg.norm(s * p - g, axis=-1).mean() * 1000)
    assert 0 < n_mpjpe(pred, gt) and abs(n_mpjpe(pred, gt) - np.mean(ref)) < 1e-4


def test_velocity_error_constant_offset_zero_and_known_value():
    gt = _skeleton(T=10)
    assert velocity_error(gt + 0.05, gt) < 1e-12
    drift = gt.copy()
    drift[..., 0] += 0.002 * np.arange(10)[:, None]  # 2 mm per frame more in x
    assert abs(velocity_error(drift, gt) - 2.0) < 1e-9


def test_breakdown_per_action_and_region():
    gt = np.zeros((3, 37, 3))
    a = gt.copy()
    a[:, regions()["lumbar"], 0] = 0.010  # walking: lumbar off by 10 mm
    b = gt.copy()
    b[:, regions()["cervical"], 1] = 0.004  # sitting: cervical off by 4 mm
    t = breakdown([("Walking", a, gt), ("Sitting", b, gt), ("Walking", gt, gt)])
    assert list(t) == ["Walking", "Sitting", "Mean"]
    assert abs(t["Walking"]["lumbar"] - 5.0) < 1e-9  # pooled over both Walking items
    assert t["Walking"]["cervical"] == 0 and abs(t["Sitting"]["cervical"] - 4.0) < 1e-9
    assert abs(t["Mean"]["lumbar"] - 2.5) < 1e-9 and abs(t["Mean"]["cervical"] - 2.0) < 1e-9
    assert abs(t["Walking"]["all"] - 5.0 * 4 / 37) < 1e-9
    # the spine set: the 15 spine-centric keypoints = the three regions
    sp = set(regions()["spine"].tolist())
    assert len(sp) == 15 and sp == set(np.concatenate([regions()[r] for r in ("lumbar", "thoracic", "cervical")]))
    # a 15-keypoint prediction (spine-only lifter) keeps its regions by id
    ids = spinetrack37().subset("spine15_simspine")
    t15 = breakdown([("Walking", a[:, ids], gt[:, ids])], keypoints=ids)
    assert abs(t15["Walking"]["lumbar"] - 10) < 1e-9 and t15["Walking"]["thoracic"] == 0


def test_pck_at_known_distances():
    gt = np.zeros((1, 4, 2)) + 100.0
    boxes = np.array([[0, 0, 200.0, 100.0]])  # shorter side 100 px
    pred = gt.copy()
    pred[0, :, 0] += [0.0, 5.0, 15.0, 30.0]  # normalised 0, .05, .15, .30
    assert pck(pred, gt, boxes, 0.1) == 0.5
    assert np.allclose(pck(pred, gt, boxes, [0.0, 0.05, 0.2, 0.3]), [0.25, 0.5, 0.75, 1.0])
    vis = np.array([[True, True, False, True]])
    assert abs(pck(pred, gt, boxes, 0.2, visible=vis) - 2 / 3) < 1e-12
    pred[0, 0] = np.nan  # a missed visible keypoint is wrong
    assert pck(pred, gt, boxes, 1.0) == 0.75


def test_pck_auc_against_closed_form():
    # errors spread over [0, 0.6] box units: AUC over [0, T] = mean(max(0, 1 - e/T)) (integral worked out)
    rng = np.random.default_rng(1)
    e = rng.uniform(0, 0.6, size=(2000, 37))
    ang = rng.uniform(0, 2 * np.pi, e.shape)
    side = 80.0
    gt = rng.uniform(0, 500, size=e.shape + (2,))
    pred = gt + side * e[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)
    boxes = np.tile([10, 10, 120.0, side], (len(e), 1))
    th = np.linspace(0, 0.5, 501)
    expect = np.mean(np.maximum(0, 1 - e / 0.5))
    assert abs(pck_auc(pred, gt, boxes, th) - expect) < 1e-3
    assert pck_auc(gt, gt, boxes) == 1.0


def _oks_case(seed=0, n=3):
    rng = np.random.default_rng(seed)
    gt = np.zeros((n, 37, 3))
    gt[..., 0] = rng.uniform(100, 300, (n, 37))
    gt[..., 1] = rng.uniform(100, 500, (n, 37))
    gt[..., 2] = 2
    boxes = np.tile([90.0, 90.0, 220.0, 420.0], (n, 1))
    return gt, boxes


def _offset_for_oks(oks, area, sigmas):
    """Distance (px) at which each keypoint's OKS term exp(-d^2 / (2 area (2 sigma)^2)) equals ``oks``."""
    return np.sqrt(-2 * np.log(oks) * area * (2 * np.asarray(sigmas)) ** 2)


def test_coco_oks_perfect_and_crafted_case():
    gt, boxes = _oks_case()
    for sub in ("body", "spine"):
        r = coco_oks(gt, boxes, gt[..., :2], subset=sub)
        assert r == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "AR": 1.0}
    # crafted: image 0 exact (score .9); image 1 every keypoint at per-point OKS 0.62 (score .8);
    # image 2 at 0.83 (score .7). By hand, over the 10 thresholds .50:.05:.95:
    #   t <= .60 (3 thresholds): all three TP -> AP_t 1, recall 1
    #   .65 <= t <= .80 (4):       image 1 FP; ranked TP, FP, TP -> precision envelope 1 up to recall 1/3,
    #                              2/3 up to 2/3; 101-point AP_t = (34 * 1 + 33 * 2/3) / 101; recall 2/3
    #   t >= .85 (3):              only image 0: AP_t = 34/101, recall 1/3
    sk = spinetrack37()
    ids = sk.subset("spine")
    area = boxes[0, 2] * boxes[0, 3]
    pred = gt[..., :2].copy()
    ang = np.random.default_rng(5).uniform(0, 2 * np.pi, 37)
    unit = np.c_[np.cos(ang), np.sin(ang)]
    sig = np.asarray(sk.oks_sigmas)
    pred[1] += _offset_for_oks(0.62, area, sig)[:, None] * unit
    pred[2] += _offset_for_oks(0.83, area, sig)[:, None] * unit
    r = coco_oks(gt, boxes, pred, scores=[0.9, 0.8, 0.7], subset="spine")
    ap_mid = (34 + 33 * 2 / 3) / 101
    expect_ap = (3 * 1 + 4 * ap_mid + 3 * 34 / 101) / 10
    assert abs(r["AP"] - expect_ap) < 1e-9, (r, expect_ap)
    assert r["AP50"] == 1.0 and abs(r["AP75"] - ap_mid) < 1e-9
    assert abs(r["AR"] - (3 * 1 + 4 * 2 / 3 + 3 / 3) / 10) < 1e-9
    # the body subset sees the same construction (offsets scale with each keypoint's sigma)
    rb = coco_oks(gt, boxes, pred, scores=[0.9, 0.8, 0.7], subset="body")
    assert abs(rb["AP"] - expect_ap) < 1e-9
    # a spine-only error leaves the body AP at 1
    p2 = gt[..., :2].copy()
    p2[:, ids] += 50.0
    assert coco_oks(gt, boxes, p2, subset="body")["AP"] == 1.0
    assert coco_oks(gt, boxes, p2, subset="spine")["AP"] < 0.2
