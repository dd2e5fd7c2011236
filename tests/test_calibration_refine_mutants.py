"""Bundle-adjustment details that mutation testing showed the other tests did not pin (issue 16):
the gauge choice, the parameter layout and residuals against a projection written out here, the
Jacobian's sparsity against finite differences, the observation selection by hand, the robust cost
against scipy's own, the refusals' full text, the printed table and the written file read back.
Small hand-made sessions (four Human3.6M cameras, a few hundred points): a few seconds in all."""

import types

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from simspine.calibration import h36m_cameras, read_calibration_toml, write_calibration_toml
from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.io.session import Session2D
from simspine.multiview import calibration_refine as cr
from simspine.multiview.calibration_health import camera_statistics
from simspine.multiview.calibration_refine import RefineOptions, RefineResult
from simspine.multiview.lr_swap import swap_index
from simspine.multiview.triangulation import TriangulationOptions, TriangulationResult, triangulate

NAMES = ["LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee",
         "LAnkle", "RAnkle", "Neck"]
BODY = np.array([[0.2, 0, 1.45], [-0.2, 0, 1.45], [0.3, 0, 1.15], [-0.3, 0, 1.15], [0.32, 0, 0.9],
                 [-0.32, 0, 0.9], [0.12, 0, 0.95], [-0.12, 0, 0.95], [0.12, 0, 0.5], [-0.12, 0, 0.5],
                 [0.12, 0, 0.08], [-0.12, 0, 0.08], [0, 0, 1.5]])


def _turned(cam: Camera, deg: float, axis=(0.3, 1.0, 0.2)) -> Camera:
    a = np.asarray(axis, float)
    R = Rotation.from_rotvec(np.deg2rad(deg) * a / np.linalg.norm(a)).as_matrix() @ cam.R
    return Camera(cam.name, cam.size, cam.K, cam.dist, R, -R @ cam.center, cam.dist_model)


def _session(cams=None, T=20, truth_cams=None, conf=None):
    """A skeleton turning and walking in the S9 capture volume, exact pixels from ``truth_cams``
    (default: the S9 cameras), calibrated as ``cams`` (default: the same)."""
    truth_cams = truth_cams or h36m_cameras("S9")
    cams = cams or truth_cams
    t = np.arange(T)
    ang = 0.15 * t
    R = np.stack([[[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]] for a in ang])
    X = np.einsum("tij,kj->tki", R, BODY) + (0.03 * t)[:, None, None] * np.array([1.0, 0.5, 0.0])
    uv = np.stack([c.project(X.reshape(-1, 3)).reshape(T, len(NAMES), 2) for c in truth_cams])
    conf = np.ones(uv.shape[:3]) if conf is None else conf
    return Session2D(cams, uv, conf, t / 50.0, NAMES, "test", 50.0), X


# ---- small functions -----------------------------------------------------------------------------
def test_rotation_angle_deg():
    Ra = Rotation.from_rotvec([0.1, -0.4, 0.3]).as_matrix()
    Rb = Rotation.from_rotvec([-0.2, 0.1, 0.5]).as_matrix()
    M = Ra @ Rb.T
    want = np.rad2deg(np.arccos((np.trace(M) - 1) / 2))
    assert cr.rotation_angle_deg(Ra, Rb) == pytest.approx(want, abs=1e-9)
    assert cr.rotation_angle_deg(Ra, Ra) == pytest.approx(0.0, abs=1e-6)
    R30 = Rotation.from_rotvec(np.deg2rad(30) * np.array([0.0, 0.6, 0.8])).as_matrix()
    assert cr.rotation_angle_deg(R30 @ Rb, Rb) == pytest.approx(30.0, abs=1e-9)
    assert isinstance(cr.rotation_angle_deg(Ra, Rb), float)
    assert np.isnan(cr._n(None)) and cr._n(2) == 2.0 and isinstance(cr._n(2), float)


def test_rho_equals_least_squares_cost():
    """``cost_before`` uses ``_rho``: half its sum must be scipy's own cost of the same residuals
    (a problem whose residuals do not depend on x: scipy reports the cost at the start)."""
    r = np.array([-40.0, -3.5, -0.2, 0.0, 1.0, 2.9, 3.0, 3.1, 12.0, 250.0])
    for loss in cr.LOSSES:
        for f in (1.0, 3.0, 7.5):
            o = RefineOptions(loss=loss, f_scale_px=f)
            sol = least_squares(lambda x: r + 0.0 * x[0], [0.0], loss=loss, f_scale=f, max_nfev=1)
            assert 0.5 * cr._rho(r, o).sum() == pytest.approx(sol.cost, rel=1e-12), (loss, f)


def test_pick_gauge_order_and_refusals():
    def st(m, n=100):
        return {"median_px": m, "observations": n}

    names = ["a", "b", "c", "d", "e"]
    stats = [st(2.0), st(1.0), st(None), st(0.5, 29), st(1.0)]  # d: too few observations to count
    assert cr._pick_gauge(stats, names, None, None) == (1, 4)  # b, then e (equal medians: index order)
    assert cr._pick_gauge([st(2.0), st(1.0), st(None), st(0.5, 30), st(1.0)], names, None, None) == (3, 1)
    assert cr._pick_gauge(stats, names, "c", None) == (2, 1)
    assert cr._pick_gauge(stats, names, "b", None) == (1, 4)
    assert cr._pick_gauge(stats, names, None, "d") == (1, 3)
    # d (too few observations) sorts before c (no median): both after the cameras that count
    assert cr._pick_gauge([st(None), st(None), st(None), st(0.5, 29), st(9.0)], names, "e", None) == (4, 3)
    with pytest.raises(InputError) as e:
        cr._pick_gauge(stats, names, None, "b")
    assert str(e.value) == "the scale camera must differ from the fixed camera (b)"
    with pytest.raises(InputError) as e:
        cr._pick_gauge(stats, names, "x", None)
    assert str(e.value) == "no camera named 'x' (cameras: a, b, c, d, e)"
    with pytest.raises(InputError) as e:
        cr._pick_gauge(stats, names, "a", "y")
    assert str(e.value) == "no camera named 'y' (cameras: a, b, c, d, e)"


def test_unswapped_uses_the_triangulation_threshold():
    cams = h36m_cameras("S9")
    sess, _ = _session(T=8)
    swap = swap_index(NAMES)
    conf = np.where(np.arange(len(NAMES)) % 2 == 0, 0.9, 0.5)[None, None].repeat(4, 0).repeat(8, 1)
    bad_uv = sess.keypoints.copy()
    bad_uv[1] = bad_uv[1][:, swap]
    bad_conf = conf.copy()
    bad_conf[1] = bad_conf[1][:, swap]
    bad = Session2D(list(cams), bad_uv, bad_conf, sess.timestamps, NAMES)
    assert cr.unswapped(cams, bad, TriangulationOptions(swap_fix=False)) is bad
    assert cr.unswapped(cams, sess, TriangulationOptions()) is sess  # nothing swapped: the same object
    other = [c.converted("opencv", exact=False) for c in cams]
    out = cr.unswapped(other, bad, TriangulationOptions())
    assert out is not bad and out.cameras == other
    np.testing.assert_allclose(out.keypoints, sess.keypoints, atol=1e-9)
    np.testing.assert_array_equal(out.conf, conf)
    np.testing.assert_array_equal(bad.keypoints[1], sess.keypoints[1][:, swap])  # the input is untouched
    # the triangulation options score the labellings: views 1 and 2 swapped from frame 3 on fit as well
    # as 0 and 3 swapped; the 3D continuity decides, unless every point is rejected (uncertainty bound 0)
    from simspine.multiview.lr_swap import fix_lr_swaps

    two_uv = sess.keypoints.copy()
    two_uv[1:3, 3:] = two_uv[1:3, 3:][:, :, swap]
    two = Session2D(list(cams), two_uv, sess.conf, sess.timestamps, NAMES)
    for o in (TriangulationOptions(), TriangulationOptions(max_uncertainty_mm_per_px=0.0)):
        want, _, _ = fix_lr_swaps(cams, two_uv, sess.conf, swap, triangulation=o)
        np.testing.assert_array_equal(cr.unswapped(cams, two, o).keypoints, want)
    assert not np.array_equal(cr.unswapped(cams, two, o).keypoints, cr.unswapped(cams, two, TriangulationOptions()).keypoints)
    # a threshold above the right side's 0.5: no pair is seen on both sides, no evidence, nothing undone
    assert cr.unswapped(cams, bad, TriangulationOptions(conf_threshold=0.6)) is bad


def test_session_statistics_equal_their_parts():
    sess, _ = _session(T=6)
    kp, conf = sess.keypoints.copy(), sess.conf.copy()
    kp[0, 1, 2] = [np.nan, 5.0]
    conf[2, :, 3] = 0.45
    conf[1, 4, 5] = np.nan
    sess = Session2D(sess.cameras, kp, conf, sess.timestamps, NAMES)
    for o, thr in ((None, 0.3), (TriangulationOptions(conf_threshold=0.5), 0.5)):
        res, stats = cr.session_statistics(sess.cameras, sess, o)
        ref = triangulate(sess.cameras, kp, conf, o)
        np.testing.assert_array_equal(res.valid, ref.valid)
        np.testing.assert_array_equal(res.views_used, ref.views_used)
        confident = np.zeros((6, len(NAMES), 4), bool)
        for c in range(4):
            for t in range(6):
                for k in range(len(NAMES)):
                    confident[t, k, c] = np.isfinite(kp[c, t, k]).all() and np.nan_to_num(conf[c, t, k]) >= thr
        want = camera_statistics(ref.view_error, ref.views_used, ref.valid, confident, sess.camera_names)
        assert stats == want
        assert [s["observations"] for s in stats] == ([77, 77, 78, 78] if thr == 0.3 else [77, 77, 72, 78])


# ---- the problem ---------------------------------------------------------------------------------
def _problem(focal=False, sigma=0.002, fixed=0, scale=2, n=6, seed=0):
    cams = h36m_cameras("S9")
    rng = np.random.default_rng(seed)
    X0 = np.c_[rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n), rng.uniform(0.3, 1.7, n)]
    cam_idx = np.repeat(np.arange(4), n)
    pt_idx = np.tile(np.arange(n), 4)
    uv = np.stack([c.project(X0) for c in cams]).reshape(-1, 2) + rng.normal(0, 2.0, (4 * n, 2))
    return cr._Problem(cams, fixed, scale, focal, X0, cam_idx, pt_idx, uv, sigma), cams, X0, cam_idx, pt_idx, uv


def test_problem_layout():
    p, cams, X0, *_ = _problem()
    assert p.slices == {1: {"rot": slice(0, 3), "centre": slice(3, 6)}, 2: {"rot": slice(6, 9), "centre": slice(9, 11)},
                        3: {"rot": slice(11, 14), "centre": slice(14, 17)}}
    assert p.n_cam_params == 17 and p.n_points == 6
    np.testing.assert_array_equal(p.x0, np.r_[np.zeros(17), X0.ravel()])
    assert p.radius == pytest.approx(np.linalg.norm(cams[2].center - cams[0].center), rel=1e-15)
    pf, *_ = _problem(focal=True, fixed=1, scale=0)
    assert pf.slices == {0: {"rot": slice(0, 3), "centre": slice(3, 5), "focal": slice(5, 6)},
                         2: {"rot": slice(6, 9), "centre": slice(9, 12), "focal": slice(12, 13)},
                         3: {"rot": slice(13, 16), "centre": slice(16, 19), "focal": slice(19, 20)}}
    assert pf.n_cam_params == 20 and len(pf.x0) == 20 + 18
    assert [o.tolist() for o in p.obs_by_cam] == [list(range(6 * c, 6 * c + 6)) for c in range(4)]
    centre = cams[0].center
    same = [Camera("a", cams[0].size, cams[0].K, cams[0].dist, np.eye(3), -centre, cams[0].dist_model), cams[1],
            Camera("twin", cams[0].size, cams[0].K, cams[0].dist, np.eye(3), -centre, cams[0].dist_model), cams[3]]
    with pytest.raises(InputError) as e:
        cr._Problem(same, 0, 2, False, X0, np.zeros(1, int), np.zeros(1, int), np.zeros((1, 2)))
    assert str(e.value) == "cameras a and twin share one centre"


def test_problem_cameras_from_parameters():
    p, cams, X0, *_ = _problem(focal=True)
    for c, c0 in zip(p.cameras(p.x0), cams, strict=True):
        np.testing.assert_allclose(c.R, c0.R, atol=1e-15)
        np.testing.assert_allclose(c.t, c0.t, atol=1e-12)
        np.testing.assert_allclose(c.K, c0.K, atol=0)
        assert (c.name, c.size, c.dist_model) == (c0.name, c0.size, c0.dist_model)
        np.testing.assert_array_equal(c.dist, c0.dist)
    assert p.cameras(p.x0)[0] is cams[0]
    x = p.x0.copy()
    rng = np.random.default_rng(1)
    x[:p.n_cam_params] = rng.normal(0, 0.05, p.n_cam_params)
    out = p.cameras(x)
    assert out[0] is cams[0]
    for c in (1, 3):
        s = p.slices[c]
        np.testing.assert_allclose(out[c].R, Rotation.from_rotvec(x[s["rot"]]).as_matrix() @ cams[c].R, atol=1e-14)
        np.testing.assert_allclose(out[c].center, cams[c].center + x[s["centre"]], atol=1e-12)
        k = np.exp(x[s["focal"]][0])
        K = cams[c].K.copy()
        K[0, 0] *= k
        K[0, 1] *= k
        K[1, 1] *= k
        np.testing.assert_allclose(out[c].K, K, rtol=1e-15)
    # the scale camera: on the sphere around the fixed camera, in the direction u + a e1 + b e2
    u, e1, e2 = p.basis
    assert abs(u @ e1) < 1e-12 and abs(u @ e2) < 1e-12 and abs(e1 @ e2) < 1e-12
    np.testing.assert_allclose([np.linalg.norm(e1), np.linalg.norm(e2)], 1.0, rtol=1e-12)
    a, b = x[p.slices[2]["centre"]]
    d = u + a * e1 + b * e2
    np.testing.assert_allclose(out[2].center, cams[0].center + p.radius * d / np.linalg.norm(d), atol=1e-12)
    assert np.linalg.norm(out[2].center - cams[0].center) == pytest.approx(p.radius, rel=1e-12)
    # a camera skewed in K keeps its skew scaled with the focal length
    skew = Camera("s", cams[3].size, cams[3].K + [[0, 2.0, 0], [0, 0, 0], [0, 0, 0]], cams[3].dist, cams[3].R,
                  cams[3].t, cams[3].dist_model)
    ps = cr._Problem([*cams[:3], skew], 0, 2, True, X0, np.zeros(1, int), np.zeros(1, int), np.zeros((1, 2)))
    xs = ps.x0.copy()
    xs[ps.slices[3]["focal"]] = np.log(1.1)
    assert ps.cameras(xs)[3].K[0, 1] == pytest.approx(2.2, rel=1e-12)
    # the basis when the baseline lies along x (the other helper axis is used)
    along = Camera("x", cams[0].size, cams[0].K, cams[0].dist, cams[0].R, -cams[0].R @ (cams[0].center + [3.0, 0, 0]),
                   cams[0].dist_model)
    px = cr._Problem([cams[0], along], 0, 1, False, X0, np.zeros(1, int), np.zeros(1, int), np.zeros((1, 2)))
    u, e1, e2 = px.basis
    np.testing.assert_allclose(u, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(e1, np.cross(u, [0.0, 1.0, 0.0]), atol=1e-12)
    np.testing.assert_allclose(e2, np.cross(u, e1), atol=1e-12)


def test_problem_residuals_by_hand():
    p, cams, X0, cam_idx, pt_idx, uv = _problem(focal=True)
    rng = np.random.default_rng(2)
    x = p.x0.copy()
    x[:p.n_cam_params] = rng.normal(0, 0.02, p.n_cam_params)
    x[p.n_cam_params:] += rng.normal(0, 0.01, X0.size)
    cams_x = p.cameras(x)
    X = x[p.n_cam_params:].reshape(-1, 3)
    want = np.concatenate([cams_x[c].project(X[k][None])[0] - uv[i] for i, (c, k) in enumerate(zip(cam_idx, pt_idx,
                                                                                                   strict=True))])
    prior = np.concatenate([(cams_x[c].center - cams[c].center) / 0.002 for c in (1, 2, 3)])
    np.testing.assert_allclose(p.residuals(x), np.r_[want, prior], rtol=1e-10, atol=1e-9)
    for sigma in (None, 0.0):
        q, *_ = _problem(focal=True, sigma=sigma)
        np.testing.assert_allclose(q.residuals(x), want, rtol=1e-10, atol=1e-9)
    # at the start the prior is zero
    np.testing.assert_allclose(p.residuals(p.x0)[len(want):], 0.0, atol=1e-9)
    # a point behind a camera: a constant 1000 px residual on both coordinates
    xb = p.x0.copy()
    xb[p.n_cam_params:p.n_cam_params + 3] = cams[0].center - 2.0 * cams[0].R[2]
    r = p.residuals(xb)
    assert r[0] == 1e3 and r[1] == 1e3 and np.isfinite(r).all()


def test_problem_sparsity_matches_finite_differences():
    for focal, sigma in ((False, 0.002), (True, 0.002), (True, None)):
        p, *_ = _problem(focal=focal, sigma=sigma, n=3)
        A = p.sparsity().toarray()
        rng = np.random.default_rng(3)
        x = p.x0.copy()
        x[:p.n_cam_params] = rng.normal(0, 0.02, p.n_cam_params)
        r0 = p.residuals(x)
        J = np.empty((len(r0), len(x)))
        for j in range(len(x)):
            dx = np.zeros_like(x)
            dx[j] = 1e-6
            J[:, j] = (p.residuals(x + dx) - p.residuals(x - dx)) / 2e-6
        assert A.shape == J.shape and A.dtype == np.int8
        nz = np.abs(J) > 1e-6
        n_obs = 2 * len(p.uv)
        np.testing.assert_array_equal(A[:n_obs] != 0, nz[:n_obs])  # each pixel: its camera's and point's parameters
        assert not (nz[n_obs:] & (A[n_obs:] == 0)).any()  # the prior: within each camera's centre block
        assert (A[n_obs:] != 0).sum() == (0 if not sigma else 3 * (3 + 2 + 3))


# ---- observations, refusals, the whole adjustment --------------------------------------------------
def test_select_observations_by_hand():
    C, T, K = 3, 10, 4
    rng = np.random.default_rng(4)
    kp = rng.uniform(0, 900, (C, T, K, 2))
    conf = np.full((C, T, K), 0.9)
    valid = np.ones((T, K), bool)
    valid[3] = False
    pts = rng.normal(size=(T, K, 3))
    conf[1, 5, 2] = conf[2, 5, 2] = 0.49  # frame 5, keypoint 2: only camera 0 confident -> no point
    conf[2, 9, 1] = 0.5  # exactly min_conf: kept
    kp[0, 0, 3] = np.nan  # a missing pixel
    sess = Session2D(h36m_cameras("S9")[:3], kp, conf, np.arange(T) / 50, ["a", "b", "c", "d"])
    res = TriangulationResult(pts, np.zeros((T, K)), np.zeros((T, K, C)), np.ones((T, K, C), bool), valid)
    X0, ci, pi, uv = cr.select_observations(sess, res, RefineOptions(max_points=12))  # 4 per frame: 3 frames
    frames = [0, 5, 9]  # of the 9 valid frames, the first, middle and last
    expect_pts = [(f, k) for f in frames for k in range(K) if not (f == 5 and k == 2)]
    np.testing.assert_array_equal(X0, np.array([pts[f, k] for f, k in expect_pts]))
    obs = [(c, i) for c in range(C) for i, (f, k) in enumerate(expect_pts)
           if np.isfinite(kp[c, f, k]).all() and conf[c, f, k] >= 0.5]
    assert list(zip(ci.tolist(), pi.tolist(), strict=True)) == obs
    np.testing.assert_array_equal(uv, np.array([kp[c, expect_pts[i][0], expect_pts[i][1]] for c, i in obs]))
    assert len(obs) == 3 * 11 - 1
    # few points asked: still two frames, the first and the last
    X0, *_ = cr.select_observations(sess, res, RefineOptions(max_points=1))
    np.testing.assert_array_equal(X0, np.r_[pts[0], pts[9]])
    # enough asked for every frame: all nine; min_conf above every confidence: no observation
    X0, ci, *_ = cr.select_observations(sess, res, RefineOptions(max_points=36))
    assert len(X0) == 9 * 4 - 1
    X0, ci, pi, uv = cr.select_observations(sess, res, RefineOptions(min_conf=0.95))
    assert X0.shape == (0, 3) and ci.size == pi.size == 0 and uv.shape == (0, 2)
    none = TriangulationResult(pts, np.zeros((T, K)), np.zeros((T, K, C)), np.ones((T, K, C), bool),
                               np.zeros((T, K), bool))
    X0, ci, *_ = cr.select_observations(sess, none, RefineOptions())
    assert X0.shape == (0, 3) and ci.size == 0


def test_refine_refusals():
    sess, _ = _session(T=4)
    with pytest.raises(InputError) as e:
        cr.refine_calibration(sess, RefineOptions(loss="l2"))
    assert str(e.value) == "unknown loss 'l2' (use one of soft_l1, huber, cauchy, linear)"
    one = Session2D(sess.cameras[:1], sess.keypoints[:1], sess.conf[:1], sess.timestamps, NAMES)
    with pytest.raises(InputError) as e:
        cr.refine_calibration(one)
    assert str(e.value) == "refining a calibration needs at least two cameras"
    few = Session2D(sess.cameras, sess.keypoints[:, :1], sess.conf[:, :1], sess.timestamps[:1], NAMES)
    with pytest.raises(InputError) as e:
        cr.refine_calibration(few, RefineOptions(min_conf=0.7))
    assert str(e.value) == ("only 13 triangulated keypoints seen by two or more cameras with confidence >= 0.7; too "
                            "few to refine the calibration (lower --min-conf?)")
    # two cameras are enough: one fixed, the other keeps its distance and turns
    truth = h36m_cameras("S9")[:2]
    two, _ = _session([truth[0], _turned(truth[1], 0.5)], T=4, truth_cams=truth)
    r = cr.refine_calibration(two, RefineOptions(fixed_camera=truth[0].name))
    assert r.scale_camera == truth[1].name and r.points == 52
    assert cr.rotation_angle_deg(r.cameras[1].R, truth[1].R) < 0.02


@pytest.fixture(scope="module")
def turned():
    """The S9 rig with camera 3 (the default scale camera is another) turned by 1 degree; exact pixels."""
    truth = h36m_cameras("S9")
    cams = list(truth)
    cams[3] = _turned(cams[3], 1.0)
    sess, _ = _session(cams, T=20, truth_cams=truth)
    return sess, truth


def test_refine_result_fields(turned, monkeypatch):
    sess, truth = turned
    logs = []
    # A fake clock (two readings, 3.5 s apart): the reported time is the solve's duration, read
    # from the clock and not from this machine's speed.
    clock = iter([100.0, 103.5])
    monkeypatch.setattr(cr, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    r = cr.refine_calibration(sess, RefineOptions(max_points=130), log=logs.append)
    assert r.fixed_camera != truth[3].name and r.scale_camera != truth[3].name
    f = [c.name for c in truth].index(r.fixed_camera)
    s = [c.name for c in truth].index(r.scale_camera)
    res, raw = cr.session_statistics(sess.cameras, sess)
    assert (f, s) == cr._pick_gauge(raw, sess.camera_names, None, None)
    X0, ci, *_ = cr.select_observations(sess, res, RefineOptions(max_points=130))
    assert (r.points, r.observations) == (len(X0), len(ci)) and r.points == 130
    radius = np.linalg.norm(sess.cameras[s].center - sess.cameras[f].center)
    assert logs == [f"bundle adjustment: {r.points} points, {r.observations} observations; {r.fixed_camera} fixed, "
                    f"distance {r.fixed_camera}-{r.scale_camera} kept ({radius:.3f} m)"]
    assert r.cameras[f] is sess.cameras[f]
    assert [c.name for c in r.cameras] == sess.camera_names
    assert r.rotation_change_deg[truth[3].name] == pytest.approx(1.0, abs=0.01)
    assert r.rotation_change_deg[r.fixed_camera] == 0.0 and r.centre_change_mm[r.fixed_camera] == 0.0
    for c, c0 in zip(r.cameras, sess.cameras, strict=True):
        assert r.rotation_change_deg[c.name] == pytest.approx(cr.rotation_angle_deg(c.R, c0.R), abs=1e-12)
        assert r.centre_change_mm[c.name] == pytest.approx(np.linalg.norm(c.center - c0.center) * 1000, abs=1e-9)
        assert r.focal_change[c.name] == 1.0
        assert cr.rotation_angle_deg(c.R, truth[[t.name for t in truth].index(c.name)].R) < 0.01
    assert r.before[3]["median_px"] > 10 and r.after[3]["median_px"] < 0.5
    assert r.before == cr.session_statistics(sess.cameras, sess)[1]  # nothing swapped: as triangulated
    assert r.cost_before > 100 * r.cost_after and r.nfev >= 2 and r.seconds == 3.5 and isinstance(r.message, str)
    prob = cr._Problem(sess.cameras, f, s, False, X0, ci, *cr.select_observations(sess, res, RefineOptions(max_points=130))[2:],
                       0.002)
    assert r.cost_before == pytest.approx(0.5 * cr._rho(prob.residuals(prob.x0), RefineOptions()).sum(), rel=1e-12)


def test_refine_options_reach_the_solver(turned):
    sess, truth = turned
    base = dict(max_points=130)
    r = cr.refine_calibration(sess, RefineOptions(**base, max_nfev=2))
    assert r.nfev <= 2 and r.rotation_change_deg[truth[3].name] < 0.9
    assert r.message == "The maximum number of function evaluations is exceeded."
    r = cr.refine_calibration(sess, RefineOptions(**base, fixed_camera=truth[1].name, scale_camera=truth[3].name))
    assert (r.fixed_camera, r.scale_camera) == (truth[1].name, truth[3].name)
    assert np.linalg.norm(r.cameras[3].center - r.cameras[1].center) == pytest.approx(
        np.linalg.norm(truth[3].center - truth[1].center), rel=1e-12)
    costs = {loss: cr.refine_calibration(sess, RefineOptions(**base, loss=loss, max_nfev=1)).cost_before
             for loss in ("soft_l1", "linear")}
    assert costs["linear"] > 2 * costs["soft_l1"]
    f3 = cr.refine_calibration(sess, RefineOptions(**base, f_scale_px=30.0, max_nfev=1)).cost_before
    assert f3 > 2 * costs["soft_l1"]
    # min_conf reaches the selection: with confidences 0.6 and min_conf 0.7 nothing is left
    low = Session2D(sess.cameras, sess.keypoints, np.full(sess.conf.shape, 0.6), sess.timestamps, NAMES)
    with pytest.raises(InputError, match="only 0 triangulated"):
        cr.refine_calibration(low, RefineOptions(**base, min_conf=0.7))
    # the triangulation options reach the initial triangulation: a threshold above every confidence
    with pytest.raises(InputError, match="only 0 triangulated"):
        cr.refine_calibration(low, RefineOptions(**base, min_conf=0.5, triangulation=TriangulationOptions(
            conf_threshold=0.65)))


def test_refine_focal_and_the_centre_prior():
    """Camera 2's focal length 2% long: with ``refine_focal`` it comes back (factor 1/1.02); without
    a centre prior the centres are free, and a camera still ends at the truth on exact pixels."""
    truth = h36m_cameras("S9")
    cams = list(truth)
    c = cams[2]
    K = c.K.copy()
    K[0, 0] *= 1.02
    K[1, 1] *= 1.02
    cams[2] = Camera(c.name, c.size, K, c.dist, c.R, c.t, c.dist_model)
    sess, _ = _session(cams, T=20, truth_cams=truth)
    r = cr.refine_calibration(sess, RefineOptions(max_points=130, refine_focal=True, fixed_camera=truth[0].name,
                                                  scale_camera=truth[1].name))
    assert r.focal_change[c.name] == pytest.approx(1 / 1.02, abs=2e-4)
    np.testing.assert_allclose(r.cameras[2].K[:2, :2], truth[2].K[:2, :2], rtol=2e-4)
    assert r.cameras[2].K[0, 2] == truth[2].K[0, 2]
    assert r.focal_change[truth[3].name] == pytest.approx(1.0, abs=2e-4)
    free = cr.refine_calibration(sess, RefineOptions(max_points=130, refine_focal=True, fixed_camera=truth[0].name,
                                                     scale_camera=truth[1].name, centre_sigma_m=None))
    assert free.focal_change[c.name] == pytest.approx(1 / 1.02, abs=2e-3)
    assert free.cost_before == pytest.approx(r.cost_before, rel=1e-12)  # the prior is zero at the start


# ---- printing and writing ------------------------------------------------------------------------
def _stat(name, med, p95, inc):
    return {"name": name, "median_px": med, "p95_px": p95, "inconsistent_share": inc}


def _result(focal=None):
    cams = h36m_cameras("S9")[:3]
    names = [c.name for c in cams]
    return RefineResult(
        cams, names[0], names[1],
        [_stat(names[0], 1.0, 2.0, 0.0), _stat(names[1], 1.5, 3.25, 0.125), _stat(names[2], 30.0, 45.0, None)],
        [_stat(names[0], 0.9, 1.8, 0.0), _stat(names[1], 1.2, 2.5, 0.0), _stat(names[2], None, 2.0, 0.01)],
        dict(zip(names, [0.0, 0.25, 2.0], strict=True)), dict(zip(names, [0.0, 1.5, 3.0], strict=True)),
        dict(zip(names, focal or [1.0, 1.0, 1.0], strict=True)), 1500, 5400, 1234.5678, 12.345678, 17, 2.25,
        "`ftol` termination condition is satisfied.")


def test_format_refinement_text():
    r = _result()
    text = cr.format_refinement(r)
    lines = text.splitlines()
    n = r.cameras
    heads = [h.strip() for h in lines[0].split("  ") if h.strip()]
    assert heads == ["camera", "median px before", "p95 px before", "inconsistent % before", "median px after",
                     "p95 px after", "inconsistent % after", "rotation change deg", "centre shift mm"]
    rows = [ln.split() for ln in lines[2:5]]
    assert rows[0] == [n[0].name, "(fixed)", "1.00", "2.00", "0.00", "0.90", "1.80", "0.00", "0.00", "0.00"]
    assert rows[1] == [n[1].name, "(scale)", "1.50", "3.25", "12.50", "1.20", "2.50", "0.00", "0.25", "1.50"]
    assert rows[2] == [n[2].name, "30.00", "45.00", "nan", "nan", "2.00", "1.00", "2.00", "3.00"]
    assert lines[5].startswith("(median/p95: reprojection error of every confident observation of a triangulated "
                               "point, used or excluded; whole session triangulated with the calibration before/after)")
    assert lines[6] == ("bundle adjustment: 1500 points, 5400 observations, robust cost 1235 -> 12.35, 17 evaluations, "
                        "2.2 s (`ftol` termination condition is satisfied.)")
    assert len(lines) == 7
    # a focal change: one more column, with the factors
    text = cr.format_refinement(_result([1.0, 0.98, 1.0]))
    lines = text.splitlines()
    assert lines[0].rstrip().endswith("centre shift mm  focal x")
    assert lines[3].split()[-2:] == ["1.50", "0.98"] and lines[2].split()[-1] == "1.00"


def test_write_refined_keeps_unused_cameras(tmp_path):
    cams = [c.converted("opencv", exact=False) for c in h36m_cameras("S9")]
    orig = write_calibration_toml(tmp_path / "Calib.toml", cams)
    r = _result()
    refined = [_turned(c, 1.0) for c in cams[:3]]
    r.cameras = refined
    sess = Session2D(refined, np.zeros((3, 1, 1, 2)), np.zeros((3, 1, 1)), [0.0], ["a"],
                     world_frame="lab (Z up)", meta={"calibration": str(orig)})
    out = cr.write_refined(tmp_path / "refined.toml", r, sess)
    got = read_calibration_toml(out)
    assert [c.name for c in got] == [c.name for c in cams]
    for g, want in zip(got, [*refined, cams[3]], strict=True):
        np.testing.assert_allclose(g.R, want.R, atol=1e-9)
        np.testing.assert_allclose(g.t, want.t, atol=1e-9)
    assert "lab (Z up)" in out.read_text()
    # the original cannot be read: the session's cameras; no original named: the same
    for meta in ({"calibration": str(tmp_path / "gone.toml")}, {}):
        sess.meta = meta
        got = read_calibration_toml(cr.write_refined(tmp_path / "r2.toml", r, sess))
        assert [c.name for c in got] == [c.name for c in refined]
        np.testing.assert_allclose(got[2].R, refined[2].R, atol=1e-9)


def test_with_calibration(tmp_path):
    cams = [c.converted("opencv", exact=False) for c in h36m_cameras("S9")]
    path = write_calibration_toml(tmp_path / "c.toml", [_turned(c, 1.0) for c in cams])
    sess = Session2D(cams[2::-1], np.zeros((3, 1, 1, 2)), np.zeros((3, 1, 1)), [0.0], ["a"], meta={"x": 1})
    out = cr.with_calibration(sess, path)
    assert out.camera_names == sess.camera_names and out.meta == {"x": 1, "calibration": str(path)}
    assert sess.meta == {"x": 1}
    for c, c0 in zip(out.cameras, sess.cameras, strict=True):
        assert cr.rotation_angle_deg(c.R, c0.R) == pytest.approx(1.0, abs=1e-6)
    partial = write_calibration_toml(tmp_path / "p.toml", cams[:1])
    with pytest.raises(InputError) as e:
        cr.with_calibration(sess, partial)
    assert str(e.value) == f"{partial}: no camera {cams[2].name}, {cams[1].name} in this calibration (it has {cams[0].name})"
