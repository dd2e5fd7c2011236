"""BatchedIK details that mutation testing of ``ik_batched.py`` left alive (issue 16,
docs/mutation.md): its batch helpers against JacobianIK's numpy definitions (the Marquardt
diagonal, Nielsen's damping factor, the predicted decrease, the robust threshold, the recent
median that is the noise level, the losses and IRLS weights), and a 12-frame trial with a marker
the model cannot follow from frame 5 on: the same jump restarts, fit and poses as JacobianIK.
About 15 s together (most of it the BatchedIK solve)."""

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("simspine.biomech.batched_fk")

from simspine.biomech import ik as ikm  # noqa: E402
from simspine.biomech.fk import Kinematics, run_fk  # noqa: E402
from simspine.biomech.ik import JacobianIK  # noqa: E402
from simspine.biomech.ik_batched import (  # noqa: E402
    _HUBER,
    _LOG,
    _LS,
    BatchedIK,
    _damping_factor,
    _marquardt_diagonal,
    _predicted,
    _Solver,
)
from simspine.biomech.model import prepare_model  # noqa: E402
from simspine.biomech.motion import random_motion  # noqa: E402
from simspine.trajectories import Trajectories  # noqa: E402

DT = dict(dtype=torch.float64, device="cpu")


def _ns(robust=True):
    """The attributes of a _Solver that its cost helpers read."""
    return SimpleNamespace(torch=torch, robust=robust, dt=DT,
                           o=SimpleNamespace(robust_k=ikm.ROBUST_K, robust_min_delta=ikm.ROBUST_MIN_DELTA))


def test_marquardt_diagonal_matches_jacobian_ik():
    """Each row's diagonal floored at MARQUARDT_FLOOR x its own largest entry, and at 1e-12 (a row
    of zeros), as ``ik.marquardt_diagonal``; rows are independent (the max is per row)."""
    rng = np.random.default_rng(0)
    d = rng.uniform(0.0, 1.0, (4, 6)) * np.array([[1.0], [1e3], [1e-6], [0.0]])
    d[0, 2] = 0.0
    got = _marquardt_diagonal(torch.as_tensor(d)).numpy()
    np.testing.assert_allclose(got, ikm.marquardt_diagonal(d), rtol=1e-15, atol=0)
    assert got[3].tolist() == [1e-12] * 6 and got[0, 2] == pytest.approx(1e-3 * d[0].max())


def test_damping_factor_and_predicted_decrease_match_jacobian_ik():
    """Nielsen's factor for gain ratios below 0, 0.25, 0.5, 1, above 2 and a zero prediction, as
    ``ik.damping_factor``; the predicted decrease -(2 g.s + s'Hs) per row."""
    dec = np.array([-1.0, 0.25, 0.5, 0.9, 1.0, 3.0, 1.0, 0.0])
    pred = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0])
    got = _damping_factor(torch, torch.as_tensor(dec), torch.as_tensor(pred)).numpy()
    np.testing.assert_allclose(got, ikm.damping_factor(dec, pred), rtol=1e-15)
    assert got[1] == got[2] == 1.0  # 1 - (2 rho - 1)^3 >= 1 there: capped
    assert got[4] == pytest.approx(1.0 / 3.0) and got[3] == pytest.approx(1.0 - 0.8 ** 3)
    rng = np.random.default_rng(1)
    g, s = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    a = rng.normal(size=(3, 4, 4))
    H = a @ a.transpose(0, 2, 1)
    want = [-(2.0 * g[i] @ s[i] + s[i] @ H[i] @ s[i]) for i in range(3)]
    got = _predicted(torch.as_tensor(g), torch.as_tensor(H), torch.as_tensor(s)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_robust_threshold_matches_jacobian_ik():
    """``delta_of``: per frame k x the median distance of the used markers / 1.538, at least
    1 cm, infinite with no marker used (and without the robust loss), as ``ik.robust_threshold``:
    odd and even counts of used markers (numpy's median of an even count is the mean of the two
    middle values), one marker, none."""
    rng = np.random.default_rng(2)
    e = rng.uniform(0.0, 0.2, (6, 9))
    use = np.ones((6, 9), bool)
    use[1, :4] = False        # 5 used
    use[2, ::2] = False       # 4 used
    use[3, 1:] = False        # 1 used
    use[4] = False            # none
    e[5] = 1e-4               # floor
    got = _Solver.delta_of(_ns(), torch.as_tensor(e), torch.as_tensor(use)).numpy()
    want = [ikm.robust_threshold(e[i], use[i]) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert np.isinf(got[4]) and got[5] == ikm.ROBUST_MIN_DELTA
    off = _Solver.delta_of(_ns(robust=False), torch.as_tensor(e), torch.as_tensor(use)).numpy()
    assert off.shape == (6,) and np.all(np.isinf(off))


def test_recent_median_is_jacobian_iks_noise_level():
    """``_recent``: numpy's median of the costs of the 10 frames up to ``last`` that are not before
    the chain's ``first`` frame (JacobianIK: ``median(costs[max(0, t - 10):t])`` with t = last + 1):
    a window of 10, of 1, of an odd and an even count, and one cut by a chain starting at 5."""
    cs = np.random.default_rng(3).uniform(0.0, 1.0, 30)
    last = np.array([20, 0, 2, 5, 12, 29])
    first = np.array([0, 0, 0, 0, 5, 25])
    got = _Solver._recent(SimpleNamespace(torch=torch), torch.as_tensor(cs), torch.as_tensor(last),
                          torch.as_tensor(first), torch.arange(10)).numpy()
    want = [np.median(cs[max(f, t - 9):t + 1]) for t, f in zip(last, first, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_losses_and_irls_weights_match_jacobian_ik():
    """``rho`` and ``irls`` per loss kind (least squares, Huber, log tail) for distances below and
    beyond the threshold, as ``ik``'s huber/log rho and weight (and e^2, 1 for least squares)."""
    e = np.array([[0.001, 0.02, 0.05, 0.3]] * 3)
    delta = np.array([0.04, 0.04, 0.04])
    kind = torch.as_tensor([_LS, _HUBER, _LOG])
    ns = _ns()
    rho = _Solver.rho(ns, torch.as_tensor(e), torch.as_tensor(delta), kind).numpy()
    w = _Solver.irls(ns, torch.as_tensor(e), torch.as_tensor(delta), kind).numpy()
    np.testing.assert_allclose(rho[0], e[0] ** 2, rtol=1e-15)
    np.testing.assert_allclose(rho[1], ikm.huber_rho(e[1], 0.04), rtol=1e-14)
    np.testing.assert_allclose(rho[2], ikm.log_rho(e[2], 0.04), rtol=1e-14)
    np.testing.assert_allclose(w[0], 1.0)
    np.testing.assert_allclose(w[1], ikm.huber_weight(e[1], 0.04), rtol=1e-14)
    np.testing.assert_allclose(w[2], ikm.log_weight(e[2], 0.04), rtol=1e-14)


@pytest.fixture(scope="module")
def jump_trial():
    """12 frames of exact markers (50 Hz); the right wrist 15 cm off from frame 5 on (a marker the
    model cannot follow): JacobianIK's jump check fires at frame 5, the restarts find nothing
    better, and that fit is the reference for the next 10 frames (no restarts at frames 6-11)."""
    path = str(prepare_model())
    kin = Kinematics(path)
    traj, _ = run_fk(kin, random_motion(kin, 12, rate=50.0, seed=3))
    xyz = traj.xyz.copy()
    xyz[5:, traj.names.index("RWrist")] += np.array([0.0, 0.15, 0.0])
    tr = Trajectories(traj.time, traj.names, xyz, traj.conf)
    both = BatchedIK(restarts=3).solve_many(path, [traj, tr])
    return JacobianIK(restarts=3).solve(path, tr), BatchedIK(restarts=3).solve(path, tr), both


def test_jump_restarts_and_fit_agree_with_jacobian_ik(jump_trial):
    """BatchedIK makes the same single jump restart round as JacobianIK (seen: 1 and 1; keeping
    the accepted fit for frames t-10 instead of t+10 restarts again at frames 6-9: 5; a counter
    starting at 1 reports 2), the same marker RMS per frame (0.11 mm, then 22-23.5 mm) and
    poses within 0.01 deg (seen 1.5e-9 deg); its statistics count trial steps and loss phases.
    Kills `lockstep` 380 (acc_until - 10) and `_Solver.__init__` 211 (jump_restarts = 1)."""
    rj, rb, _ = jump_trial
    print("jumps", rj.meta["jump_restarts"], rb.meta["jump_restarts"], "rms mm", 1000 * rb.rms, rb.meta["lockstep"])
    assert rj.meta["jump_restarts"] == 1 and rb.meta["jump_restarts"] == 1
    np.testing.assert_allclose(rb.rms, rj.rms, atol=1e-6)
    assert np.all(rb.rms[:5] < 0.2e-3) and np.all(rb.rms[5:] > 0.02)
    rot = rj.rotational
    assert np.rad2deg(np.abs(rb.values[:, rot] - rj.values[:, rot]).max()) < 0.01
    st = rb.meta["lockstep"]
    # 11 warm frames, each with a least-squares phase, Huber / log where the wrist is beyond
    assert st["phases_0"] == 11 and st["phases_1"] == st["phases_2"] == 7 and st["trials"] > 11


def test_noisy_frames_stop_where_jacobian_ik_stops():
    """8 frames with 10 mm marker noise, no restarts: each warm frame stops at the noisy relative
    decrease (or a step below the accuracy) as JacobianIK does -- marker RMS per frame within
    0.005 mm of JacobianIK's (seen: equal to 1 um), 68 trial steps in all (JacobianIK: 100
    Jacobian evaluations). Requiring both a small step and a small decrease runs the frames to
    max_iterations: 743 trial steps, RMS up to 1.9 mm off. Kills `lockstep` 691 (``|`` -> ``&``)."""
    path = str(prepare_model())
    kin = Kinematics(path)
    traj, _ = run_fk(kin, random_motion(kin, 8, rate=50.0, seed=0))
    rng = np.random.default_rng(1)
    noisy = Trajectories(traj.time, traj.names, traj.xyz + rng.normal(0.0, 0.01, traj.xyz.shape), traj.conf)
    rj = JacobianIK(restarts=0).solve(path, noisy)
    rb = BatchedIK(restarts=0).solve(path, noisy)
    print("rms mm", 1000 * rj.rms, 1000 * rb.rms, rb.meta["lockstep"])
    np.testing.assert_allclose(rb.rms, rj.rms, atol=5e-6)
    assert rb.meta["lockstep"]["trials"] < 200


def test_jump_restart_reference_in_a_second_chain(jump_trial):
    """The same trial solved after a clean one in one batch (its chain starts at frame 12 of the
    batch): still one jump restart round in the batch (the accepted fit's window counted from the
    chain's own first frame), the same fit as solved alone. Counting from ``f + offset`` puts
    frames 6-9 outside the window: 5 rounds. Kills `lockstep` 322."""
    _, rb, (clean, second) = jump_trial
    print("jumps", second.meta["jump_restarts"], "rms mm", 1000 * second.rms)
    assert second.meta["jump_restarts"] == 1 and second.meta["trials_in_batch"] == 2
    np.testing.assert_allclose(second.rms, rb.rms, atol=1e-6)
    assert np.all(clean.rms < 0.2e-3)


@pytest.fixture(scope="module")
def noisy_trial():
    """12 frames of 10 mm marker noise (50 Hz) and the prepared model's path."""
    path = str(prepare_model())
    kin = Kinematics(path)
    traj, _ = run_fk(kin, random_motion(kin, 12, rate=50.0, seed=4))
    xyz = traj.xyz + np.random.default_rng(4).normal(0.0, 0.01, traj.xyz.shape)
    return path, Trajectories(traj.time, traj.names, xyz, traj.conf)


def test_smoothing_stays_within_each_trial_of_a_batch(noisy_trial):
    """Two trials in one batch with the temporal term: each gets its own smoothed solution, as when
    solved alone (the acceleration rows end at the trial's last frame; with the window's end not
    passed on, ``smooth`` 126, they reached into the next trial's frames)."""
    path, traj = noisy_trial
    other = traj.select(traj.names)
    other.xyz = other.xyz[::-1].copy()  # a trial whose first frame is far from the first one's last
    other.conf = other.conf[::-1].copy()
    ik = BatchedIK(smoothness=0.1)
    both = ik.solve_many(path, [traj, other])
    alone = [BatchedIK(smoothness=0.1).solve(path, t) for t in (traj, other)]
    for b, a in zip(both, alone, strict=True):
        np.testing.assert_allclose(b.values, a.values, atol=1e-7)


def test_lm_noisy_stop_needs_the_cost_within_three_times_the_noise_level(noisy_trial):
    """The batch-wide solver's noisy stop (relative decrease 1e-3) applies only where the frame's
    cost is below 3x its noise level, as JacobianIK's: with the level at 1/3.5 of the converged
    cost the frame is solved as strictly as with level 0 (``lm`` 284, factor 4, stopped early)."""
    from simspine.biomech.model import load_model

    path, traj = noisy_trial
    s = _Solver(BatchedIK(), load_model(path), [traj], None, None, False)
    fr = torch.tensor([0])
    z0 = torch.as_tensor(s.z_default, **s.dt)[None]
    z0 = s.place_pelvis(z0, fr)
    s.noise_level[0] = 0.0
    z_strict, X_strict = s.lm(z0.clone(), fr, 200, 1e-3, _LS)
    c_strict = float(s.marker_cost(fr, X_strict)[0])
    s.noise_level[0] = float("inf")
    z_loose, _ = s.lm(z0.clone(), fr, 200, 1e-3, _LS)
    assert float((z_loose - z_strict).abs().max()) > 1e-6  # the loose stop does stop elsewhere
    s.noise_level[0] = c_strict / 3.5
    z_mid, _ = s.lm(z0.clone(), fr, 200, 1e-3, _LS)
    np.testing.assert_allclose(z_mid.numpy(), z_strict.numpy(), atol=1e-12)
