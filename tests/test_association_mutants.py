"""Association helpers that mutation testing showed the other tests did not pin (issue 16), each
against an independent computation: cameras looking at a known point, a brute-force weighted
median, line-to-line distances in closed form, per-point least squares."""

import numpy as np
import pytest

from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.multiview.association import (
    Association,
    AssociationOptions,
    _disjoint,
    _median_distance,
    associate,
    candidate_groups,
    capture_centre,
    pair_agreement,
    point_ray_distance,
    triangulate_midpoint,
    weighted_median,
    world_rays,
)


def _look_at(centre, target, name="c"):
    z = np.asarray(target, float) - centre
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return Camera(name, (1000, 1000), [[800, 0, 500], [0, 800, 500], [0, 0, 1]], np.zeros(5), R, -R @ centre)


P = np.array([0.3, -0.2, 1.0])
CENTRES = np.array([[4.0, 0.5, 1.5], [-3.0, 3.0, 2.0], [0.5, -4.0, 1.0], [-2.5, -2.5, 2.5]])


def _cams():
    return [_look_at(c, P, f"c{i}") for i, c in enumerate(CENTRES)]


def test_capture_centre_is_where_the_axes_meet():
    np.testing.assert_allclose(capture_centre(_cams()), P, atol=1e-12)


def test_world_rays_pass_through_the_points():
    cams = _cams()
    rng = np.random.default_rng(0)
    X = P + rng.uniform(-0.5, 0.5, (5, 3))
    uv = np.stack([c.project(X) for c in cams])
    uv[1, 2] = np.nan
    o, d = world_rays(cams, uv)
    np.testing.assert_allclose(o, CENTRES, atol=1e-12)
    assert d.shape == (4, 5, 3)
    np.testing.assert_allclose(np.linalg.norm(d[[0, 2, 3]], axis=-1), 1.0)
    for c in range(4):
        dist = point_ray_distance(o[c], d[c][None], X[None])[0]
        ok = np.isfinite(dist)
        assert np.all(dist[ok] < 1e-9) and ok.sum() == (4 if c == 1 else 5)
        # the rays point forwards, towards the points
        assert np.all(((X - o[c]) * d[c]).sum(-1)[ok] > 0)


def _wmedian_loop(v, w):
    ok = np.isfinite(v) & (w > 0)
    if not ok.any():
        return np.nan
    v, w = v[ok], w[ok]
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    return v[order][np.nonzero(cw >= 0.5 * cw[-1])[0][0]]


def test_weighted_median_brute_force():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(300, 7))
    w = rng.random((300, 7)) * (rng.random((300, 7)) < 0.8)
    v[rng.random((300, 7)) < 0.1] = np.nan
    w[5] = 0.0
    got = weighted_median(v, w)
    ref = np.array([_wmedian_loop(v[i], w[i]) for i in range(300)])
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got[5])
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])) == 2.0
    assert weighted_median(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0, 1.0])) == 2.0
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])) == 3.0


def _line_distance(o1, d1, o2, d2):
    n = np.cross(d1, d2)
    if np.linalg.norm(n) < 1e-12:
        return np.linalg.norm(np.cross(o2 - o1, d1))
    return abs((o2 - o1) @ n) / np.linalg.norm(n)


def test_pair_agreement_closed_form():
    rng = np.random.default_rng(2)
    C, T, Pn, K = 3, 2, 2, 5
    origins = rng.normal(size=(C, 3)) * 3
    dirs = rng.normal(size=(C, T, Pn, K, 3))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    dirs[0, 0, 0, 1] = dirs[1, 0, 1, 1]  # parallel rays
    weight = rng.random((C, T, Pn, K)) + 0.1
    weight[2, 1, 0, :2] = 0.0  # 3 keypoints left: fewer than min_common=4
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the parallel pair divides 0 by 0: silently
        D = pair_agreement(origins, dirs, weight, min_common=4, chunk=1)
    assert D.shape == (C, C, T, Pn, Pn)
    for a in range(C):
        assert np.isnan(D[a, a]).all()
        for b in range(C):
            if a == b:
                continue
            for t in range(T):
                for p in range(Pn):
                    for q in range(Pn):
                        d = np.array([_line_distance(origins[a], dirs[a, t, p, k], origins[b], dirs[b, t, q, k])
                                      for k in range(K)])
                        w = np.minimum(weight[a, t, p], weight[b, t, q])
                        ref = _wmedian_loop(d, w) if (w > 0).sum() >= 4 else np.nan
                        np.testing.assert_allclose(D[a, b, t, p, q], ref, rtol=1e-9)
    assert np.isnan(D[2, 0, 1, 0]).all() and np.isfinite(D[2, 0, 0]).all()
    np.testing.assert_array_equal(D[0, 1], np.swapaxes(D[1, 0], -1, -2))


def test_triangulate_midpoint_least_squares():
    rng = np.random.default_rng(3)
    origins = CENTRES
    X = P + rng.uniform(-0.5, 0.5, (6, 3))
    d = X[None] - origins[:, None]
    d = d + rng.normal(scale=0.01, size=d.shape)  # rays that miss a little
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    w = rng.random((4, 6)) + 0.5
    w[:3, 5] = 0.0  # one view left: NaN
    d[0, 4] = np.nan  # a missing ray is ignored
    got = triangulate_midpoint(origins, d, w)
    for n in range(5):
        A, b = [], []
        for c in range(4):
            if w[c, n] > 0 and np.isfinite(d[c, n]).all():
                M = np.sqrt(w[c, n]) * (np.eye(3) - np.outer(d[c, n], d[c, n]))
                A.append(M)
                b.append(M @ origins[c])
        ref = np.linalg.lstsq(np.vstack(A), np.concatenate(b), rcond=None)[0]
        np.testing.assert_allclose(got[n], ref, atol=1e-9)
    assert np.isnan(got[5]).all()


def test_small_helpers_by_hand():
    o = np.zeros(3)
    d = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    X = np.array([[5.0, 3.0, 4.0], [1.0, 1.0, 9.0]])
    np.testing.assert_allclose(point_ray_distance(o, d, X), [5.0, np.sqrt(2.0)])
    groups = np.array([[0, 1, -1], [0, 2, 1], [1, -1, 0], [-1, 1, 1], [2, 0, 2]])
    assert _disjoint(groups) == [0, 2, 4]
    Xg = np.zeros((2, 5, 3))
    Xg[0, :, 0] = [1, 2, 3, 4, 5]
    Xg[1, :3] = np.nan
    np.testing.assert_allclose(_median_distance(Xg, np.zeros((5, 3)), 4), [3.0, np.inf])
    np.testing.assert_allclose(_median_distance(Xg, np.zeros((5, 3)), 2), [3.0, 0.0])


def test_options_messages():
    for name in ("agreement_m", "jump_m"):
        with pytest.raises(InputError, match=f"^{name} must be > 0, got 0$"):
            AssociationOptions(**{name: 0})
    for v in (1.0, -0.1):
        with pytest.raises(InputError, match=rf"^conf_threshold must be in \[0, 1\), got {v}$"):
            AssociationOptions(conf_threshold=v)
    with pytest.raises(InputError, match="^min_common must be >= 1, got 0$"):
        AssociationOptions(min_common=0)
    with pytest.raises(InputError, match="^speed_mps must be >= 0, got -1$"):
        AssociationOptions(speed_mps=-1)


def test_summary_counts():
    chosen = np.array([[0, -1, 1, 0], [-1, -1, 0, 2]])
    a = Association(np.zeros((2, 4, 1, 2)), np.zeros((2, 4, 1)), chosen, 2, 3)
    n_cand = np.array([[1, 0, 2, 1], [1, 1, 1, 3]])
    assert a.summary(n_cand) == {"start_frame": 2, "people_at_start": 3, "frames_with_subject": 3,
                                 "views_chosen": 5, "views_total": 8,
                                 "chosen_index_counts": {"0": 3, "1": 1, "2": 1},
                                 "frames_with_several_people": 2, "views_without_subject": 2}
    assert "frames_with_several_people" not in a.summary()


def test_associate_refusals_and_no_groups():
    cams = _cams()
    with pytest.raises(InputError, match=r"^candidates must be \(C=4, T, P, K, 2\) with confidences "
                                         r"\(C, T, P, K\); got \(4, 2, 1, 5\) and \(4, 2, 1, 5\)$"):
        associate(cams, np.zeros((4, 2, 1, 5)), np.zeros((4, 2, 1, 5)))
    with pytest.raises(InputError, match="candidates must be"):
        associate(cams, np.zeros((3, 2, 1, 5, 2)), np.zeros((3, 2, 1, 5)))
    # nobody seen by two cameras: the person asked for is not there
    uv = np.full((4, 2, 1, 5, 2), np.nan)
    with pytest.raises(InputError, match="^person 0 asked for, but at most 0 people are seen by two or more "
                                         "cameras in any frame$"):
        associate(cams, uv, np.zeros((4, 2, 1, 5)))
    D = np.full((2, 2, 3, 1, 1), np.nan)
    t, g, sc, X = candidate_groups(D, np.zeros((2, 3)), np.zeros((2, 3, 1, 5, 3)), np.ones((2, 3, 1, 5)), 0.1)
    assert t.shape == (0,) and g.shape == (0, 2) and sc.shape == (0,) and X.shape == (0, 5, 3)


def _skeleton(centre, K=8, seed=5):
    """(K, 3) keypoints within 0.3 m of ``centre`` (metres)."""
    return np.asarray(centre, float) + np.random.default_rng(seed).uniform(-0.3, 0.3, (K, 3))


def _candidates(cams, frames):
    """Candidate arrays (C, T, P, K, 2) / (C, T, P, K) from ``frames``: a list over T of lists over
    P of (K, 3) skeletons or None (absent), seen by every camera with confidence 1."""
    T, Pn = len(frames), max(len(f) for f in frames)
    K = next(s for f in frames for s in f if s is not None).shape[0]
    uv = np.full((len(cams), T, Pn, K, 2), np.nan)
    conf = np.zeros((len(cams), T, Pn, K))
    for t, people in enumerate(frames):
        for p, S in enumerate(people):
            if S is not None:
                for c, cam in enumerate(cams):
                    uv[c, t, p] = cam.project(S)
                    conf[c, t, p] = 1.0
    return uv, conf


def test_associate_tracks_both_ways_with_a_radius_growing_while_unseen():
    """Two still people 1 m apart: A at the capture centre (index 1), B (index 0) seen from frame 3
    on. ``person=1`` (the less central) is B, identified at frame 3 and followed forwards. Backwards
    nobody lies within 0.3 m; at 5 fps the radius grows by 2 m/s x 0.2 s per frame unseen:
    0.7 m at frame 1 (A is 1 m away: not taken), 1.1 m at frame 0 (A taken)."""
    cams = _cams()
    A = _skeleton(P)
    B = A + [1.0, 0.0, 0.0]
    frames = [[None, A]] * 3 + [[B, A]] * 3
    uv, conf = _candidates(cams, frames)
    res = associate(cams, uv, conf, person=1, fps=5.0)
    assert res.start_frame == 3 and res.people_at_start == 2
    expect = np.array([1, -1, -1, 0, 0, 0])
    assert np.array_equal(res.chosen, np.tile(expect, (4, 1)))
    np.testing.assert_allclose(res.keypoints[:, 4], uv[:, 4, 0], atol=0)
    assert np.isnan(res.keypoints[:, 1:3]).all() and not res.conf[:, 1:3].any()
    # faster allowed speed: 0.3 + 5 x 0.2 = 1.3 m after one unseen frame, so A is taken at frame 1
    # (and then at frame 0, now 0 m from the last position)
    res = associate(cams, uv, conf, person=1, fps=5.0, options=AssociationOptions(speed_mps=5.0))
    assert np.array_equal(res.chosen[0], [1, 1, -1, 0, 0, 0])


def _midpoint_reference(origins, dirs, w):
    """Weighted least-squares point nearest to rays (one keypoint): origins (V, 3), dirs (V, 3)."""
    A = sum(wi * (np.eye(3) - np.outer(d, d)) for wi, d in zip(w, dirs, strict=True))
    b = sum(wi * (np.eye(3) - np.outer(d, d)) @ o for wi, o, d in zip(w, origins, dirs, strict=True))
    return np.linalg.solve(A, b)


def test_candidate_groups_keep_their_starters_and_order_by_disagreement():
    """Two cameras; camera 0 holds a 5-px-off, low-confidence detection (index 0) and an exact one
    (index 1) of the same person, camera 1 one exact detection. Both camera-0 candidates agree with
    camera 1, so both pairs start a group. The group started by the off detection keeps it, although
    the exact one lies nearer that group's skeleton (pulled towards camera 1's rays by the weights);
    the group of the exact pair comes first (same views, smaller mean disagreement)."""
    cams = _cams()[:2]
    S = _skeleton(P, K=7)  # odd: the weighted median of equal weights is the plain median
    uv = np.full((2, 1, 2, len(S), 2), np.nan)
    conf = np.zeros((2, 1, 2, len(S)))
    uv[0, 0, 0] = cams[0].project(S) + [3.0, 4.0]
    uv[0, 0, 1] = cams[0].project(S)
    uv[1, 0, 0] = cams[1].project(S)
    conf[0, 0, 0], conf[0, 0, 1], conf[1, 0, 0] = 0.35, 1.0, 1.0
    origins, dirs = world_rays(cams, uv)
    D = pair_agreement(origins, dirs, conf)
    assert D[0, 1, 0, 0, 0] < 0.1 and D[0, 1, 0, 1, 0] < 0.1
    frame, groups, score, pts = candidate_groups(D, origins, dirs, conf, 0.1)
    assert frame.tolist() == [0, 0]
    assert groups.tolist() == [[1, 0], [0, 0]]
    # the independent figures: each group's least-squares skeleton, the median distance of each
    # view's rays to it, averaged over the two views
    for g, row in enumerate(groups):
        d = np.stack([dirs[0, 0, row[0]], dirs[1, 0, row[1]]])  # (2, K, 3)
        w = [conf[0, 0, row[0], 0], conf[1, 0, row[1], 0]]
        X = np.array([_midpoint_reference(origins, d[:, k], w) for k in range(len(S))])
        np.testing.assert_allclose(pts[g], X, atol=1e-9)
        dist = [np.median(np.linalg.norm(np.cross(X - origins[v], d[v]), axis=-1)) for v in range(2)]
        assert score[g] == pytest.approx(np.mean(dist), abs=1e-12)
    assert score[0] < 1e-9 < score[1]
    # the off detection's own rays are farther from its group's skeleton than the exact one's
    near = [np.median(point_ray_distance(origins[0], dirs[0, 0, p], pts[1])) for p in (0, 1)]
    assert near[1] < near[0] < 0.1
