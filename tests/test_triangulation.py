"""Robust triangulation against known geometry (the four Human3.6M cameras of S9)."""

import numpy as np
import pytest

from simspine.calibration import h36m_cameras
from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.multiview import triangulation as tri
from simspine.multiview.triangulation import TriangulationOptions, triangulate, triangulate_dlt

N = 20000


@pytest.fixture(scope="module")
def cams():
    return h36m_cameras("S9")


@pytest.fixture(scope="module")
def scene(cams):
    """Random points in the capture volume (metres, Human3.6M world, Z up) and their exact pixels."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(-1.5, 1.5, N), rng.uniform(-1.5, 1.5, N), rng.uniform(0.0, 1.9, N)]
    uv = np.stack([c.project(X) for c in cams])
    assert np.isfinite(uv).all()
    return X, uv


def _err_mm(P, X):
    return np.linalg.norm(P - X, axis=-1) * 1000


def test_projection_jacobian_and_rays_match_camera(cams, scene):
    X, uv = scene
    for c, cam in enumerate(cams):
        u, v, Ju, Jv = tri._project(cam, X[:200], jacobian=True)
        assert np.allclose(np.c_[u, v], uv[c, :200], atol=1e-9)
        h = 1e-6
        for k in range(3):
            dX = np.zeros(3)
            dX[k] = h
            up, vp = tri._project(cam, X[:200] + dX)
            um, vm = tri._project(cam, X[:200] - dX)
            assert np.allclose(Ju[k], (up - um) / (2 * h), rtol=1e-5, atol=1e-3)
            assert np.allclose(Jv[k], (vp - vm) / (2 * h), rtol=1e-5, atol=1e-3)


def test_exact_projections_round_trip(cams, scene):
    X, uv = scene
    res = triangulate(cams, uv)
    assert res.valid.all()
    assert np.abs(res.points - X).max() < 1e-6
    assert np.nanmax(res.reproj_error) < 1e-5
    assert res.views_used.all() and res.views_used.shape == (N, 4)
    assert np.abs(triangulate_dlt(cams, uv) - X).max() < 1e-6


def test_frames_by_keypoints_shape(cams, scene):
    X, uv = scene
    res = triangulate(cams, uv[:, :370].reshape(4, 10, 37, 2), np.ones((4, 10, 37)))
    assert res.points.shape == (10, 37, 3) and res.views_used.shape == (10, 37, 4)
    assert np.abs(res.points.reshape(-1, 3) - X[:370]).max() < 1e-6


def _expected_rms_error(cams, X, sigma):
    """sqrt(E|dX|^2) for isotropic pixel noise: sigma^2 trace((J^T J)^-1), J the stacked
    pixel Jacobians at the true points (first-order covariance of the least-squares estimate)."""
    JtJ = np.zeros((len(X), 3, 3))
    for cam in cams:
        _, _, Ju, Jv = tri._project(cam, X, jacobian=True)
        J = np.stack([np.stack(Ju, -1), np.stack(Jv, -1)], 1)  # (N, 2, 3)
        JtJ += np.einsum("nki,nkj->nij", J, J)
    return np.sqrt(sigma**2 * np.trace(np.linalg.inv(JtJ), axis1=1, axis2=2).mean())


def test_gaussian_noise_matches_least_squares_covariance(cams, scene):
    X, uv = scene
    sigma = 2.0
    noisy = uv + np.random.default_rng(1).normal(scale=sigma, size=uv.shape)
    expected = _expected_rms_error(cams, X, sigma)  # metres
    ls = triangulate(cams, noisy, options=TriangulationOptions(huber_delta_px=np.inf))
    rms = np.sqrt(np.mean(np.sum((ls.points - X) ** 2, -1)))
    assert abs(rms / expected - 1) < 0.05, (rms, expected)
    # the per-point uncertainty it reports is the same first-order quantity
    assert abs(np.sqrt(np.mean((ls.uncertainty_m_per_px * sigma) ** 2)) / expected - 1) < 0.01
    # the default robust settings lose little efficiency on Gaussian noise
    rob = triangulate(cams, noisy)
    assert rob.valid.mean() > 0.999
    rms_rob = np.sqrt(np.nanmean(np.sum((rob.points - X) ** 2, -1)))
    assert rms_rob / expected < 1.10
    # mean reprojection error of 4 views with 3 fitted dof: about sigma*sqrt(pi/2)*sqrt(5/8)
    assert 1.5 < np.nanmedian(rob.reproj_error) < 3.0


def test_one_bad_view_robust_vs_dlt(cams, scene):
    X, uv = scene
    rng = np.random.default_rng(2)
    noisy = uv + rng.normal(scale=2.0, size=uv.shape)
    clean_err = _err_mm(triangulate(cams, noisy).points, X).mean()
    clean_dlt = _err_mm(triangulate_dlt(cams, noisy), X).mean()
    bad = noisy.copy()
    sel = np.nonzero(rng.random(N) < 0.2)[0]
    which = rng.integers(0, 4, sel.size)
    ang = rng.uniform(0, 2 * np.pi, sel.size)
    bad[which, sel] += 100 * np.c_[np.cos(ang), np.sin(ang)]
    res = triangulate(cams, bad)
    rob_err = _err_mm(res.points, X)
    assert res.valid.mean() > 0.999
    assert np.nanmean(rob_err) < 2 * clean_err
    # the corrupted view was the one dropped
    assert (~res.views_used[sel, which]).mean() > 0.99
    assert res.views_used.sum(-1)[np.setdiff1d(np.arange(N), sel)].mean() > 3.99
    dlt_err = _err_mm(triangulate_dlt(cams, bad), X).mean()
    assert dlt_err > 2 * clean_dlt


def test_two_bad_views_out_of_four_consistency(cams, scene):
    """Two of four views off by 100 px in random directions: the pair-hypothesis step finds the
    consistent good pair for almost every point (2 vs 2 is only ambiguous when the two bad
    observations happen to satisfy the epipolar constraint)."""
    X, uv = scene
    rng = np.random.default_rng(3)
    bad = uv[:, :2000] + rng.normal(scale=1.0, size=(4, 2000, 2))
    for b in (0, 1):
        ang = rng.uniform(0, 2 * np.pi, 2000)
        bad[b] += 100 * np.c_[np.cos(ang), np.sin(ang)]
    res = triangulate(cams, bad)
    assert np.nanmedian(_err_mm(res.points, X[:2000])) < 10
    assert (~res.views_used[:, :2].any(-1)).mean() > 0.9
    dlt = triangulate_dlt(cams, bad)
    assert np.median(_err_mm(dlt, X[:2000])) > 5 * np.nanmedian(_err_mm(res.points, X[:2000]))


def test_confidence_threshold_and_missing_views(cams, scene):
    X, uv = scene
    uv = uv[:, :100].copy()
    conf = np.ones((4, 100))
    conf[0, :50] = 0.1  # below the default 0.3: ignored
    uv[1, :50] += 300  # confident but far off: pruned by consistency / reprojection error
    uv[2, 50:] = np.nan
    uv[3, 50:] = np.nan  # only two views left for the second half
    res = triangulate(cams, uv, conf)
    assert not res.views_used[:50, 0].any() and not res.views_used[:50, 1].any()
    # a few points are refused: two views with nearly parallel rays (large uncertainty), or
    # view 1's error happens to lie along an epipolar line (ambiguous); the rest are exact
    assert res.valid[:50].mean() >= 0.9
    assert np.nanmax(np.abs(res.points[:50] - X[:50])) < 1e-6
    assert res.valid[50:].mean() >= 0.9
    assert np.nanmax(np.abs(res.points[50:] - X[50:100])) < 1e-6
    keep = TriangulationOptions(reject_ambiguous=False, max_uncertainty_mm_per_px=None)
    res = triangulate(cams, uv, conf, keep)
    assert res.valid.all() and np.abs(res.points - X[:100]).max() < 1e-6
    assert np.nanmax(res.uncertainty_m_per_px) > 0.025  # what the default threshold refuses
    uv[1, 50:] = np.nan  # one view: invalid, NaN
    res = triangulate(cams, uv, conf)
    assert not res.valid[50:].any() and np.isnan(res.points[50:]).all()


def test_points_behind_a_camera_are_not_used(cams):
    X = np.array([[0.2, 0.1, 1.0]])
    uv = np.stack([c.project(X) for c in cams])
    res = triangulate(cams, uv)
    assert np.allclose(res.points, X, atol=1e-9)


def test_bad_input(cams, scene):
    _, uv = scene
    with pytest.raises(InputError, match="at least two cameras"):
        triangulate(cams[:1], uv[:1])
    with pytest.raises(InputError, match="shape"):
        triangulate(cams, uv[:3])
    with pytest.raises(InputError, match="confidences"):
        triangulate(cams, uv[:, :10], np.ones((4, 11)))
    # opencv-model cameras work the same way
    ocams = [c.converted("opencv", exact=False) for c in cams]
    X = np.array([[0.0, 0.0, 1.0]])
    assert np.allclose(triangulate(ocams, np.stack([c.project(X) for c in ocams])).points, X, atol=1e-9)
    assert isinstance(ocams[0], Camera)


def _views(cams, points):
    """(C, 1, 2) pixels: camera c sees points[c] (a (3,) point, or None for no observation)."""
    return np.stack([c.project(p[None]) if p is not None else np.full((1, 2), np.nan) for c, p in zip(cams, points, strict=True)])


def test_pairs_sharing_a_view_are_not_ambiguous(cams):
    """Views 0 and 1 see X; view 2 sees Y on camera 1's ray through X (so the pair {1, 2} is
    self-consistent too, at another depth); view 3 sees nothing. The two consistent pairs share
    view 1: one answer from the best pair, not a refusal."""
    X = np.array([0.2, -0.1, 1.0])
    ray = X - cams[1].center
    Y = X + 0.4 * ray / np.linalg.norm(ray)
    uv = _views(cams, [X, X, Y, None])
    res = triangulate(cams, uv)
    assert res.valid.all()
    assert np.abs(res.points[0] - X).max() < 1e-6
    assert res.views_used[0].tolist() == [True, True, False, False]


def test_disjoint_pairs_that_disagree_are_ambiguous(cams):
    """Views 0, 1 see X and views 2, 3 see Y half a metre away: two disjoint agreeing pairs, two
    answers -- refused by default, the best pair's answer with reject_ambiguous=False."""
    X = np.array([0.2, -0.1, 1.0])
    Y = X + [0.5, 0.0, 0.0]
    uv = _views(cams, [X, X, Y, Y])
    res = triangulate(cams, uv)
    assert not res.valid.any() and np.isnan(res.points).all()
    res = triangulate(cams, uv, options=TriangulationOptions(reject_ambiguous=False))
    assert res.valid.all() and res.views_used.sum() == 2
    assert min(np.abs(res.points[0] - X).max(), np.abs(res.points[0] - Y).max()) < 1e-6


def test_detector_noise_alone_is_not_ambiguous(cams, scene):
    """Gaussian noise of 10 and 15 px in all four views, no outliers: pairs of views disagree along
    their epipolar lines (depth), but one point explains all views, so (almost) nothing is refused.
    The rule as it was (any other consistent pair counted) refused 5.6% and 33% of these."""
    X, uv = scene
    rng = np.random.default_rng(7)
    for sigma, most in ((10.0, 0.01), (15.0, 0.05)):
        res = triangulate(cams, uv + rng.normal(scale=sigma, size=uv.shape))
        assert 1 - res.valid.mean() < most, sigma
        keep = triangulate(cams, uv + rng.normal(scale=sigma, size=uv.shape),
                           options=TriangulationOptions(reject_ambiguous=False))
        assert abs(keep.valid.mean() - res.valid.mean()) < most


def test_consistency_off(cams, scene):
    """consistency=False skips the pair-hypothesis step: two of four views 100 px off are then only
    handled by the reprojection pruning (worse), and disjoint disagreeing pairs are not refused."""
    X, uv = scene
    rng = np.random.default_rng(3)
    bad = uv[:, :2000] + rng.normal(scale=1.0, size=(4, 2000, 2))
    for b in (0, 1):
        ang = rng.uniform(0, 2 * np.pi, 2000)
        bad[b] += 100 * np.c_[np.cos(ang), np.sin(ang)]
    on = triangulate(cams, bad)
    off = triangulate(cams, bad, options=TriangulationOptions(consistency=False))
    gross_on = (_err_mm(on.points, X[:2000]) > 50).mean()  # NaN (refused) compares False
    gross_off = (_err_mm(off.points, X[:2000]) > 50).mean()
    assert gross_on < 0.05 and gross_off > 0.15
    # without the pair step both bad views are kept far more often
    assert (~on.views_used[:, :2].any(-1)).mean() > 0.95 > 0.85 > (~off.views_used[:, :2].any(-1)).mean()
    P = np.array([0.2, -0.1, 1.0])
    uv2 = _views(cams, [P, P, P + [0.5, 0, 0], P + [0.5, 0, 0]])
    assert not triangulate(cams, uv2).valid.any()
    # no ambiguity check without the pair step: a (wrong) two-view answer is kept
    res = triangulate(cams, uv2, options=TriangulationOptions(consistency=False))
    assert res.valid.all() and res.views_used.sum() == 2
