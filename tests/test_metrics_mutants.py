"""metrics.py: behaviours the first tests left open, found by mutation testing (issue 16).

Each test pins a number or a refusal that a plausible bug in ``simspine.metrics`` changes: the
handling of missing points (NaN) in the alignments, the edge cases of the counts (exactly 3 common
points, a keypoint seen once, two frames, two thresholds), every option (``scale=False``,
``aligned=True``, ``root``, ``axis``, ``visible``, ``sigmas``, ``image_ids``, scores), the exact
error messages, and that no NumPy warning leaks out for all-missing input. Reference values are
computed another way (by hand, with explicit loops or with the functions of another metric).
"""

import re
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from simspine import metrics as M
from simspine.errors import InputError
from simspine.skeletons import spinetrack37


def _skeleton(T=4, K=37, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=0.3, size=(T, K, 3)) + np.array([0, 1.0, 0])


def _similar(gt, scale=1.4, seed=1):
    """A rotated, scaled and moved copy of each frame of ``gt`` (T, K, 3)."""
    R = Rotation.random(len(gt), random_state=seed).as_matrix()
    return scale * np.einsum("nij,nkj->nki", R, gt) + np.array([0.3, -0.2, 1.0])


def _no_warnings():
    """Context in which any warning (NumPy's RuntimeWarning for 0/0 or an empty mean) is an error."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error")
    return ctx


# ---- shape checks and messages -----------------------------------------------------------------
def test_check_refuses_each_bad_shape_with_its_message():
    good = np.zeros((4, 37, 3))
    with pytest.raises(InputError) as e:
        M.mpjpe(np.zeros((4, 37, 2)), np.zeros((4, 37, 2)))  # same shape, 2 columns
    assert str(e.value) == "prediction (4, 37, 2) and ground truth (4, 37, 2) must both be (..., K, 3)"
    with pytest.raises(InputError, match=re.escape("prediction (5, 37, 3) and ground truth (4, 37, 3) must")):
        M.mpjpe(np.zeros((5, 37, 3)), good)  # different frame counts
    with pytest.raises(InputError, match=re.escape("prediction (3,) and ground truth (3,)")):
        M.mpjpe(np.zeros(3), np.zeros(3))  # a single point without a keypoint axis
    # one frame (K, 3) is valid: 2 mm on every keypoint
    assert M.mpjpe(good[0] + [0.002, 0, 0], good[0]) == pytest.approx(2.0, abs=1e-12)


def test_angle_rmse_message_axis_and_return_types():
    with pytest.raises(InputError) as e:
        M.angle_rmse([1.0, 2.0], [1.0])
    assert str(e.value) == "angle arrays differ in shape: (2,) vs (1,)"
    a = np.array([[10.0, 0.0], [12.0, 3.0], [14.0, -4.0]])
    b = np.zeros((3, 2))
    per_col = M.angle_rmse(a, b, axis=0)
    assert isinstance(per_col, np.ndarray) and per_col.shape == (2,)
    assert np.allclose(per_col, [np.sqrt((100 + 144 + 196) / 3), np.sqrt(25 / 3)], rtol=1e-12)
    per_row = M.angle_rmse(a, b, axis=1)
    assert np.allclose(per_row, [np.sqrt(50), np.sqrt((144 + 9) / 2), np.sqrt((196 + 16) / 2)], rtol=1e-12)
    total = M.angle_rmse(a, b)
    assert type(total) is float and total == pytest.approx(np.sqrt((100 + 144 + 196 + 9 + 16) / 6), rel=1e-12)
    # without wrap-around 179 vs -179 is 358 degrees apart
    assert M.angle_rmse([179.0], [-179.0], wrap=False) == pytest.approx(358.0)
    assert M.angle_rmse([359.0], [-1.0]) == pytest.approx(0.0, abs=1e-12)


# ---- all-missing input: NaN, no warnings ---------------------------------------------------------
def test_all_missing_gives_nan_without_warnings():
    gt = _skeleton(T=3)
    nan = np.full_like(gt, np.nan)
    ctx = _no_warnings()
    try:
        assert np.isnan(M.mpjpe(nan, gt))
        out = M.procrustes_align(nan, gt)  # frames with no common point: 0/0 inside, NaN out
        assert out.shape == gt.shape and np.isnan(out).all()
        assert np.isnan(M.p_mpjpe(nan, gt))
        assert np.isnan(M.n_mpjpe(nan, gt))
        assert np.isnan(M.scale_align(nan, gt)).all()
        # a region that is missing in every action: NaN in each row and in the mean row
        t = M.breakdown([("A", nan, gt), ("B", nan, gt)], region_sets={"r": np.array([0, 1])})
        assert np.isnan(t["A"]["r"]) and np.isnan(t["B"]["r"]) and np.isnan(t["Mean"]["r"])
    finally:
        ctx.__exit__(None, None, None)


def test_per_joint_error_counts_each_keypoint_over_its_own_frames():
    gt = np.zeros((3, 4, 3))
    pred = gt.copy()
    pred[:, :, 0] = [[0.001, 0.002, 0.003, np.nan],
                     [0.003, np.nan, 0.005, np.nan],
                     [np.nan, np.nan, 0.007, np.nan]]
    pj = M.per_joint_error(pred, gt)
    assert pj.dtype == float and pj.shape == (4,)
    # keypoint 1 is seen once (2 mm), keypoint 3 never (NaN)
    assert np.allclose(pj[:3], [2.0, 2.0, 5.0], rtol=1e-12) and np.isnan(pj[3])
    # leading axes are pooled: (2, 3, K, 3) gives the same as the 6 frames in a row
    two = np.stack([pred, pred])
    assert np.allclose(M.per_joint_error(two, np.zeros_like(two))[:3], pj[:3])


# ---- Procrustes --------------------------------------------------------------------------------
def test_procrustes_ignores_points_missing_in_either_array():
    gt = _skeleton()
    pred = _similar(gt)
    pred[0, 3] = np.nan  # missing in the prediction
    gt2 = gt.copy()
    gt2[1, 7] = np.nan  # missing in the ground truth
    aligned = M.procrustes_align(pred, gt2)
    ok = np.isfinite(pred).all(-1) & np.isfinite(gt2).all(-1)
    assert np.abs(aligned[ok] - gt2[ok]).max() < 1e-9
    # the missing prediction stays missing; a point missing only in gt is still mapped exactly
    assert np.isnan(aligned[0, 3]).all() and np.abs(aligned[1, 7] - gt[1, 7]).max() < 1e-9
    assert M.p_mpjpe(pred, gt2) < 1e-6


def test_procrustes_needs_three_common_points_per_frame():
    gt = _skeleton(T=2, K=5)
    pred = _similar(gt)
    pred[0, 3:] = np.nan  # frame 0: exactly 3 common points, enough for a similarity
    pred[1, 2:] = np.nan  # frame 1: 2 points, not enough
    out = M.procrustes_align(pred, gt)
    assert np.abs(out[0, :3] - gt[0, :3]).max() < 1e-9
    assert np.isnan(out[1]).all()


def test_procrustes_without_scale_and_leading_axes():
    gt = _skeleton(T=6)
    pred = _similar(gt, scale=1.0)
    # scale=False: a rigid copy is recovered exactly ...
    assert np.abs(M.procrustes_align(pred, gt, scale=False) - gt).max() < 1e-9
    # ... but a scaled one is not: the result keeps the prediction's size (1.5x the spread)
    big = _similar(gt, scale=1.5)
    rigid = M.procrustes_align(big, gt, scale=False)
    spread = np.linalg.norm(rigid - rigid.mean(1, keepdims=True), axis=-1).sum(1)
    ref = np.linalg.norm(gt - gt.mean(1, keepdims=True), axis=-1).sum(1)
    assert np.allclose(spread / ref, 1.5, rtol=1e-9)
    # the centroid is still matched
    assert np.allclose(rigid.mean(1), gt.mean(1), atol=1e-12)
    # leading axes (2, 3, K, 3) keep their shape and are aligned frame by frame
    out = M.procrustes_align(big.reshape(2, 3, 37, 3), gt.reshape(2, 3, 37, 3))
    assert out.shape == (2, 3, 37, 3) and np.abs(out - gt.reshape(2, 3, 37, 3)).max() < 1e-9


def test_per_region_default_sets_and_aligned():
    gt = _skeleton(T=2)
    pred = gt.copy()
    pred[:, 0, 0] += 0.037  # nose off by 37 mm: 1 mm over all 37 keypoints
    r = M.per_region(pred, gt)
    assert list(r) == ["lumbar", "thoracic", "cervical", "spine", "body", "all"]
    assert r["all"] == pytest.approx(1.0, rel=1e-12) and r["body"] == pytest.approx(37 / 17, rel=1e-12)
    # aligned=True: per-frame Procrustes first, so a similarity copy scores 0 everywhere
    sim = _similar(gt)
    ra = M.per_region(sim, gt, aligned=True)
    assert max(ra.values()) < 1e-6 and min(M.per_region(sim, gt).values()) > 100


# ---- root-relative, scale, velocity ------------------------------------------------------------
def test_root_argument_is_used():
    gt = _skeleton()
    pred = gt.copy()
    pred[:, 19, 0] += 0.010  # only the default root moves
    assert M.root_relative_mpjpe(pred, gt, root=0) == pytest.approx(10 / 37, rel=1e-9)
    assert M.root_relative_mpjpe(pred, gt) == pytest.approx(10 * 36 / 37, rel=1e-9)
    # several roots: their mean is the origin
    two = M.root_relative(gt, [3, 5])
    assert np.allclose(two[:, [3, 5]].mean(1), 0, atol=1e-12)
    # n_mpjpe with another root, against the definition written out
    def by_hand(root):
        p, g = pred - pred[:, root:root + 1], gt - gt[:, root:root + 1]
        s = (p * g).sum((1, 2)) / (p * p).sum((1, 2))
        return 1000 * np.linalg.norm(s[:, None, None] * p - g, axis=-1).mean()
    assert M.n_mpjpe(pred, gt, root=0) == pytest.approx(by_hand(0), rel=1e-9)
    assert M.n_mpjpe(pred, gt) == pytest.approx(by_hand(19), rel=1e-9)
    assert abs(by_hand(0) - by_hand(19)) > 1


def test_scale_align_ignores_missing_points():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(3, 10, 3))
    p = g / 1.25
    p[0, 2] = np.nan  # missing prediction
    g2 = g.copy()
    g2[1, 4] = np.nan  # missing ground truth
    out = M.scale_align(p, g2)
    ok = np.isfinite(p).all(-1) & np.isfinite(g2).all(-1)
    assert np.abs(out[ok] - g[ok]).max() < 1e-12
    assert M.n_mpjpe(p, g2, root=None) < 1e-9
    # against a scale found another way: least squares over the finite points of frame 2
    q = p.copy()
    q[2, 0] += 0.3
    q[2, 5] = np.nan
    f = np.isfinite(q[2]).all(-1)
    s = np.linalg.lstsq(q[2][f].reshape(-1, 1), g[2][f].reshape(-1), rcond=None)[0][0]
    assert np.allclose(M.scale_align(q, g)[2][f], s * q[2][f], rtol=1e-12)


def test_velocity_error_two_frames_and_one():
    gt = _skeleton(T=2)
    pred = gt.copy()
    pred[1, :, 2] += 0.004
    assert M.velocity_error(pred, gt) == pytest.approx(4.0, rel=1e-9)
    assert np.isnan(M.velocity_error(gt[:1], gt[:1]))
    # time on another axis
    assert M.velocity_error(pred[None], gt[None], axis=1) == pytest.approx(4.0, rel=1e-9)


# ---- point_errors and breakdown per metric -----------------------------------------------------
def test_point_errors_each_metric_matches_its_definition():
    gt = _skeleton()
    rng = np.random.default_rng(7)
    pred = _similar(gt) + rng.normal(scale=0.01, size=gt.shape)
    assert np.array_equal(M.point_errors(pred, gt), M.per_point_error(pred, gt))
    assert np.allclose(M.point_errors(pred, gt, "p_mpjpe"), M.per_point_error(M.procrustes_align(pred, gt), gt))
    rr = M.point_errors(pred, gt, "rr_mpjpe", root=4)
    assert np.allclose(rr, M.per_point_error(pred - pred[:, 4:5], gt - gt[:, 4:5]))
    p, g = pred - pred[:, 4:5], gt - gt[:, 4:5]
    s = (p * g).sum((1, 2)) / (p * p).sum((1, 2))
    assert np.allclose(M.point_errors(pred, gt, "n_mpjpe", root=4), M.per_point_error(s[:, None, None] * p, g))
    # the four differ on this case, so a swapped branch shows
    means = [M.point_errors(pred, gt, m).mean() for m in M.METRICS]
    assert len({round(x, 6) for x in means}) == 4
    assert np.mean(M.point_errors(pred, gt, "n_mpjpe")) == pytest.approx(M.n_mpjpe(pred, gt))
    with pytest.raises(InputError) as e:
        M.point_errors(pred, gt, "mpjve")
    assert str(e.value) == "unknown metric 'mpjve' (choose from mpjpe, p_mpjpe, rr_mpjpe, n_mpjpe)"


def test_breakdown_metric_root_region_sets_and_keypoint_count():
    gt = _skeleton(T=3)
    pred = gt.copy()
    pred[:, 19, 0] += 0.010
    # rr_mpjpe about keypoint 0 (root passed through): only the sacrum is off, by 10 mm
    t = M.breakdown([("A", pred, gt)], metric="rr_mpjpe", root=0, region_sets={"sacrum": [19], "nose": [0]})
    assert list(t["A"]) == ["sacrum", "nose"]
    assert t["A"]["sacrum"] == pytest.approx(10.0) and t["A"]["nose"] == 0.0
    assert M.breakdown([("A", pred, gt)], metric="rr_mpjpe")["A"]["body"] == pytest.approx(10.0)
    # 17 keypoints (COCO body) without ``keypoints``: the columns are ids 0-16
    body = gt[:, :17].copy()
    off = body.copy()
    off[:, 5, 1] += 0.017
    t17 = M.breakdown([("A", off, body)])
    assert t17["A"]["body"] == pytest.approx(1.0) and t17["A"]["all"] == pytest.approx(1.0)
    assert np.isnan(t17["A"]["lumbar"]) and np.isnan(t17["Mean"]["lumbar"])
    assert M.breakdown([]) == {}


# ---- 2D ----------------------------------------------------------------------------------------
def test_normalized_distance_2d_uses_the_shorter_side_and_only_u_v():
    gt = np.array([[[10.0, 10.0], [20.0, 20.0]]])
    pred = gt + [[3.0, 4.0], [0.0, 0.0]]  # 5 px and 0 px
    d = M.normalized_distance_2d(pred, gt, [[0, 0, 50.0, 100.0]])  # width is the shorter side
    assert np.allclose(d, [[0.1, 0.0]])
    # a third column (confidence) is ignored in both arrays
    d3 = M.normalized_distance_2d(np.dstack([pred, [[0.2, 0.9]]]), np.dstack([gt, [[1.0, 1.0]]]),
                                  [[0, 0, 50.0, 100.0]])
    assert np.allclose(d3, d)
    # one frame (K, 2) with one box (4,); normalised boxes smaller than a pixel
    assert np.allclose(M.normalized_distance_2d(pred[0] / 100, gt[0] / 100, [0, 0, 0.5, 1.0]), [0.1, 0.0])
    # a box of zero size gives NaN, not infinity
    assert np.isnan(M.normalized_distance_2d(pred, gt, [[0, 0, 0.0, 100.0]])).all()
    with pytest.raises(InputError) as e:
        M.normalized_distance_2d(pred, gt, [[0, 0, 50.0]])
    assert str(e.value) == ("2D prediction (1, 2, 2), ground truth (1, 2, 2) and boxes (1, 3) must be "
                            "(..., K, 2), (..., K, 2) and (..., 4)")
    with pytest.raises(InputError, match=re.escape("2D prediction (1, 1, 2), ground truth (1, 2, 2)")):
        M.normalized_distance_2d(pred[:, :1], gt, [[0, 0, 50.0, 100.0]])
    with pytest.raises(InputError, match=re.escape("and boxes (2, 4) must be")):
        M.normalized_distance_2d(pred, gt, [[0, 0, 50.0, 100.0]] * 2)


def _pck_case():
    """Two frames of 4 keypoints at normalised distances 0, .05, .15, .30 (box 100 px shorter side)."""
    gt = np.zeros((2, 4, 2)) + 100.0
    pred = gt.copy()
    pred[:, :, 0] += [0.0, 5.0, 15.0, 30.0]
    boxes = np.array([[0, 0, 100.0, 300.0], [0, 0, 300.0, 100.0]])
    return pred, gt, boxes


def test_pck_default_threshold_visible_and_boxes():
    pred, gt, boxes = _pck_case()
    assert type(M.pck(pred, gt, boxes)) is float
    assert M.pck(pred, gt, boxes) == 0.75 and M.pck(pred, gt, boxes, 0.2) == 0.75
    # visibility flags as 0/1 integers (COCO style)
    vis = np.array([[1, 1, 0, 0], [1, 0, 1, 1]])
    assert M.pck(pred, gt, boxes, 0.1, visible=vis) == pytest.approx(3 / 5)
    # a missing ground-truth point is not counted, even with visible given
    gt2 = gt.copy()
    gt2[1, 2] = np.nan
    assert M.pck(pred, gt2, boxes, 0.1, visible=vis) == pytest.approx(3 / 4)
    # a frame whose box is missing (NaN width or height) is left out, the other frame still counts
    for col in (2, 3):
        b = boxes.copy()
        b[0, col] = np.nan
        assert M.pck(pred, gt, b, 0.1) == 0.5
    # one visible keypoint is enough for a value
    one = np.array([[0, 1, 0, 0], [0, 0, 0, 0]])
    assert M.pck(pred, gt, boxes, 0.1, visible=one) == 1.0
    # nobody visible: NaN, for a scalar and for several thresholds
    none = np.zeros((2, 4), dtype=bool)
    assert np.isnan(M.pck(pred, gt, boxes, 0.1, visible=none))
    many = M.pck(pred, gt, boxes, [0.1, 0.2, 0.3], visible=none)
    assert many.shape == (3,) and many.dtype == float and np.isnan(many).all()
    # thresholds keep their shape
    grid = M.pck(pred, gt, boxes, [[0.0, 0.1], [0.2, 0.3]])
    assert grid.shape == (2, 2) and np.allclose(grid, [[0.25, 0.5], [0.75, 1.0]])


def test_pck_people_axis_boxes():
    # (T, P, K, 2) keypoints with (T, P, 4) boxes: a missing box drops one person of one frame
    pred, gt, boxes = _pck_case()
    P = np.stack([pred, pred], 1)
    G = np.stack([gt, gt], 1)
    B = np.stack([boxes, boxes], 1)
    B[0, 1, 2] = np.nan
    assert M.pck(P, G, B, 0.1) == 0.5
    d = M.normalized_distance_2d(P, G, B)
    assert d.shape == (2, 2, 4) and np.isnan(d[0, 1]).all() and np.isfinite(d[1]).all()


def test_pck_auc_thresholds_and_visible():
    pred, gt, boxes = _pck_case()
    # two thresholds: the trapezoid is the mean of the two PCKs
    assert M.pck_auc(pred, gt, boxes, [0.1, 0.2]) == pytest.approx((0.5 + 0.75) / 2)
    # a range not starting at 0 is divided by its own width (0.3 - 0.1)
    assert M.pck_auc(pred, gt, boxes, [0.1, 0.2, 0.3]) == pytest.approx(((0.5 + 0.75) / 2 + (0.75 + 1) / 2) / 2)
    vis = np.array([[1, 0, 0, 0], [1, 0, 0, 0]], dtype=bool)  # only the exact keypoints
    assert M.pck_auc(pred, gt, boxes, [0.1, 0.2], visible=vis) == 1.0
    for bad in ([0.1], [0.2, 0.1, 0.3], [0.1, 0.1, 0.2], [[0.0, 0.1], [0.2, 0.3]]):
        with pytest.raises(InputError) as e:
            M.pck_auc(pred, gt, boxes, bad)
        assert str(e.value) == "PCK-AUC needs at least 2 increasing thresholds"


# ---- COCO OKS ----------------------------------------------------------------------------------
def _oks_case(n=3, seed=0):
    rng = np.random.default_rng(seed)
    gt = np.zeros((n, 37, 3))
    gt[..., 0] = rng.uniform(100, 300, (n, 37))
    gt[..., 1] = rng.uniform(100, 500, (n, 37))
    gt[..., 2] = 2
    return gt, np.tile([90.0, 90.0, 220.0, 420.0], (n, 1))


def _offset(oks, area, sigmas):
    return np.sqrt(-2 * np.log(oks) * area * (2 * np.asarray(sigmas)) ** 2)


def _crafted(gt, boxes):
    """Prediction 0 exact, 1 at per-keypoint OKS 0.62, 2 at 0.83 (test_metrics' construction)."""
    sig = np.asarray(spinetrack37().oks_sigmas)
    area = boxes[0, 2] * boxes[0, 3]
    ang = np.random.default_rng(5).uniform(0, 2 * np.pi, 37)
    unit = np.c_[np.cos(ang), np.sin(ang)]
    pred = gt[..., :2].copy()
    pred[1] += _offset(0.62, area, sig)[:, None] * unit
    pred[2] += _offset(0.83, area, sig)[:, None] * unit
    return pred


def test_coco_oks_scores_rank_the_detections():
    gt, boxes = _oks_case()
    pred = _crafted(gt, boxes)
    # reversed scores: ranked 0.83, 0.62, exact. For t >= .85 the exact one comes third:
    # precision 1/3 up to recall 1/3 -> AP_t = 34 * (1/3) / 101; t in .65-.80: TP, FP, TP as before
    r = M.coco_oks(gt, boxes, pred, scores=[0.7, 0.8, 0.9])
    ap_mid = (34 + 33 * 2 / 3) / 101
    assert r["AP"] == pytest.approx((3 + 4 * ap_mid + 3 * 34 / 3 / 101) / 10, abs=1e-9)
    # the default subset is the spine's: a body-only error leaves it at 1
    off = gt[..., :2].copy()
    off[:, spinetrack37().subset("body")] += 60.0
    assert M.coco_oks(gt, boxes, off) == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "AR": 1.0}
    # subset as ids gives the same as its name; a third prediction column is ignored
    ids = list(spinetrack37().subset("spine"))
    pred3 = np.dstack([pred, np.full(pred.shape[:2], 0.5)])
    assert M.coco_oks(gt, boxes, pred3, scores=[0.7, 0.8, 0.9], subset=ids) == r


def test_coco_oks_sigmas_visibility_and_image_ids(capsys):
    gt, boxes = _oks_case()
    pred = _crafted(gt, boxes)
    base = M.coco_oks(gt, boxes, pred, scores=[0.9, 0.8, 0.7])
    # sigmas: doubled sigmas make every OKS term larger (OKS 0.62 -> 0.62**(1/4) = 0.89)
    sig2 = 2 * np.asarray(spinetrack37().oks_sigmas)
    wide = M.coco_oks(gt, boxes, pred, scores=[0.9, 0.8, 0.7], sigmas=sig2)
    assert wide["AP"] > base["AP"] and wide["AP75"] == 1.0
    # visibility 1 (labelled, occluded) counts; 0 does not, whatever is predicted there
    spine = spinetrack37().subset("spine")
    g = gt.copy()
    g[:, spine[:3], 2] = 1
    far = gt[..., :2].copy()
    far[:, spine[:3]] += 80.0
    assert M.coco_oks(g, boxes, far)["AP"] < 0.5
    g[:, spine[:3], 2] = 0
    assert M.coco_oks(g, boxes, far)["AP"] == 1.0
    # image_ids: one exact prediction for person 1 only -> recall 1/3, precision 1
    r = M.coco_oks(gt, boxes, gt[1:2, :, :2], image_ids=[1])
    assert r["AR"] == pytest.approx(1 / 3) and r["AP"] == pytest.approx(34 / 101)
    # integer boxes (pixels as int16): the OKS area w * h is computed in floating point, not wrapped
    gi, bi = _oks_case(n=1)
    bi = np.array([[0, 0, 300, 400]], dtype=np.int16)
    pi = gi[..., :2] + 12.0
    assert M.coco_oks(gi, bi, pi) == M.coco_oks(gi, bi.astype(float), pi)
    # no predictions: zeros
    assert M.coco_oks(gt, boxes, np.zeros((0, 37, 2))) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
    # pycocotools' progress prints are swallowed
    assert capsys.readouterr().out == ""


def test_coco_oks_refusals():
    gt, boxes = _oks_case(n=2)
    pred = gt[..., :2]
    msg = "COCO OKS needs gt (N, K, 3), boxes (N, 4), pred (M, K, 2): got "
    cases = [
        (gt[..., :2], boxes, pred, "(2, 37, 2), (2, 4), (2, 37, 2)"),   # no visibility column
        (gt, boxes[:, :3], pred, "(2, 37, 3), (2, 3), (2, 37, 2)"),     # boxes without height
        (gt, boxes, pred[:, :15], "(2, 37, 3), (2, 4), (2, 15, 2)"),    # fewer keypoints predicted
        (gt[:, 0], boxes, pred[:, :3], "(2, 3), (2, 4), (2, 3, 2)"),    # gt not (N, K, 3)
    ]
    for g, b, p, shapes in cases:
        with pytest.raises(InputError) as e:
            M.coco_oks(g, b, p)
        assert str(e.value) == msg + shapes
    for kw in ({"scores": [1.0]}, {"image_ids": [0]}):
        with pytest.raises(InputError) as e:
            M.coco_oks(gt, boxes, pred, **kw)
        assert str(e.value) == "scores and image_ids need one value per prediction"
