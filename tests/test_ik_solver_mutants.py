"""JacobianIK's solver paths that mutation testing showed the fast tests did not reach (issue 16):
the robust phases and the weights they report, the restart round that finds nothing better (and
is then accepted for the next frames), the smoothing sweeps on the shortest trial they run on.
Short trials in the prepared model (8 frames at 50 Hz, 3 restarts): a few seconds each."""

import itertools
import types

import numpy as np
import pytest

from simspine.biomech import ik as ik_module
from simspine.biomech.fk import run_fk
from simspine.biomech.ik import JacobianIK, log_weight
from simspine.biomech.motion import random_motion


@pytest.fixture(scope="module")
def trial(kin):
    mot = random_motion(kin, 8, rate=50.0, seed=7)
    traj, _ = run_fk(kin, mot)
    return mot, traj


def test_displaced_marker_is_downweighted_and_accepted(model_path, trial, monkeypatch):
    """Spine_03 15 cm off from frame 3 on: the robust phases down-weight it there (log weights at
    each frame's threshold), the other markers stay fitted, the jump triggers one restart round
    that finds nothing better, and that fit level is accepted for the following frames (no second
    round). Least squares spreads the error over the other markers instead."""
    mot, traj = trial
    bad = traj.select(traj.names)
    j = bad.names.index("Spine_03")
    bad.xyz[3:, j] += [0.15, 0.0, 0.0]
    # A fake clock that ticks 1 s per reading: the reported times are durations measured from the
    # solve's start (not clock readings), the first frame's within the whole solve's.
    ticks = itertools.count(1000.0)
    monkeypatch.setattr(ik_module, "_time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    rob = JacobianIK(restarts=3).solve(model_path, bad)
    monkeypatch.undo()
    # (fake clock: these are counts of its readings, not this machine's time)
    first_ticks, solve_ticks = rob.meta["first_frame_seconds"], rob.seconds
    assert 0 < first_ticks < solve_ticks < 1000
    others = np.delete(rob.marker_errors, j, axis=1)
    assert np.nanmax(others) < 2e-3
    assert np.all(rob.marker_errors[3:, j] > 0.12) and np.all(rob.marker_errors[:3, j] < 1e-3)
    np.testing.assert_allclose(rob.robust_weights, log_weight(rob.marker_errors, rob.robust_delta[:, None]),
                               rtol=1e-12)
    assert np.all(rob.robust_weights[3:, j] < 0.02) and np.all(rob.robust_weights[:3] == 1.0)
    assert np.all(rob.robust_delta == 0.01)
    assert rob.meta["jump_restarts"] == 1
    assert rob.downweighted_share()["Spine_03"] == pytest.approx(5 / 8)
    ls = JacobianIK(robust=False, restarts=3).solve(model_path, bad)
    assert np.nanmax(np.delete(ls.marker_errors, j, axis=1)[3:]) > 5e-3
    assert ls.robust_weights is None and ls.robust_delta is None
    flex = [np.rad2deg(np.abs(r.column("L5_S1_Flex_Ext") - mot.column("L5_S1_Flex_Ext"))[3:].max()) for r in (rob, ls)]
    assert flex[0] < 0.1 < flex[1]


def test_smoothing_on_three_frames(model_path, kin):
    """The smoothing sweeps run from 3 frames on (the ends' targets are extrapolated from the two
    nearest frames): on 5 mm marker noise they cut the coordinates' acceleration."""
    mot = random_motion(kin, 3, rate=50.0, seed=9)
    traj, _ = run_fk(kin, mot)
    noisy = traj.select(traj.names)
    noisy.xyz = noisy.xyz + np.random.default_rng(2).normal(0, 0.005, noisy.xyz.shape)
    a = JacobianIK().solve(model_path, noisy)
    b = JacobianIK(smoothness=1.0).solve(model_path, noisy)
    acc = [np.abs(r.values[0] - 2 * r.values[1] + r.values[2]).sum() for r in (a, b)]
    print("acceleration sum", acc, "rms mm", 1000 * a.rms, 1000 * b.rms)
    assert acc[1] < 0.8 * acc[0]
    assert np.all(b.rms < 0.02)


def test_coordinates_stay_in_range_when_markers_go_past_it(model_path, kin):
    """Every coordinate moving at constant velocity, the right knee straightening past its 0 deg
    limit (9, 6, 3, 0, -3, -6 deg; forward kinematics does not clamp): from frame 4 the
    constant-velocity prediction would fit the markers exactly but lies outside the range; the
    solution stays at the limit (the fit then misses the shank markers by millimetres)."""
    from simspine.biomech.fk import CoordinateTable

    mot = random_motion(kin, 6, rate=50.0, seed=11)
    v = mot.values[0][None] + np.arange(6)[:, None] * (mot.values[1] - mot.values[0])[None]
    j = mot.names.index("knee_angle_r")
    v[:, j] = np.deg2rad([9, 6, 3, 0, -3, -6])
    traj, _ = run_fk(kin, CoordinateTable(mot.time, mot.names, v))
    res = JacobianIK(restarts=2).solve(model_path, traj)
    ranges = {c.name: c.range for c in kin.free_coordinates}
    for k, name in enumerate(res.coordinate_names):
        if name in ranges:
            lo, hi = ranges[name]
            assert np.all(res.values[:, k] >= lo - 1e-12) and np.all(res.values[:, k] <= hi + 1e-12), name
    knee = np.rad2deg(res.column("knee_angle_r"))
    np.testing.assert_allclose(knee[:4], [9, 6, 3, 0], atol=0.05)
    assert np.all(knee[4:] == 0.0) and np.all(res.rms[4:] > 1e-3) and np.all(res.rms[:4] < 5e-4)


def test_initial_guess_places_the_pelvis(model_path):
    """The default pose's markers turned by 150 deg about the vertical and moved 3.6 m: the first
    frame's initial guess (yaw from the horizontal Kabsch fit, then the centroid shift) puts every
    marker back within a millimetre, before any iteration."""
    import opensim as osim

    from simspine.biomech.ik import _Kinematic

    model = osim.Model(model_path)
    state = model.initSystem()
    kin = _Kinematic(model, state)
    ms = model.getMarkerSet()
    names = [ms.get(i).getName() for i in range(ms.getSize())]

    def markers(z):
        kin.set_z(z)
        return np.array([ms.get(n).getLocationInGround(state).to_numpy() for n in names])

    z0 = kin.z_from_state()
    a = np.deg2rad(150.0)
    rot_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    x = markers(z0) @ rot_y.T + [2.0, 0.1, -3.0]
    z = JacobianIK._initial_guess(kin, z0.copy(), x, np.ones(len(names), bool), names)
    assert np.abs(markers(z) - x).max() < 1e-3
    # fewer than three markers used: the pose is left as it is
    few = np.zeros(len(names), bool)
    few[:2] = True
    np.testing.assert_array_equal(JacobianIK._initial_guess(kin, z0.copy(), x, few, names), z0)
