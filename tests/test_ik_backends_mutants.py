"""IK paths that mutation testing of ``OpenSimSolverIK``, ``_Kinematic``, ``_prepare``, ``_result``,
``_progress``, ``run_job`` and ``solve_trials`` showed the other tests did not reach (issue 16,
docs/mutation.md): OpenSim's solver with coordinate tasks and markers dropping in and out, the
progress bars, the models JacobianIK refuses (quaternion joints, dependent coordinates without a
linear coupler). Short trials (2-6 frames): a few seconds in all."""

import numpy as np
import pytest

from simspine.biomech import ik as ik_module
from simspine.biomech.fk import Kinematics, run_fk
from simspine.biomech.ik import JacobianIK, OpenSimSolverIK
from simspine.biomech.model import coordinate_info
from simspine.biomech.motion import random_motion
from simspine.errors import InputError
from simspine.trajectories import Trajectories


@pytest.fixture(scope="module")
def trial(kin):
    mot = random_motion(kin, 6, rate=50.0, seed=5)
    traj, _ = run_fk(kin, mot)
    return mot, traj


def test_opensim_solver_with_tasks_and_markers_dropping_out(model_path, trial):
    """OpenSim's solver with the default coordinate task (L5_S1 flexion towards 0, weight 0.01)
    and the right wrist missing in frames 2-3: it re-assembles when the set of markers changes
    (track() refuses to run then), reports no error for the missing marker, and agrees with
    JacobianIK on the same problem (L5_S1 flexion within 1.5 deg; marker RMS under 5 mm, JacobianIK's
    lower: OpenSim's ends 3.4-3.9 mm); a strong task holds its coordinate."""
    mot, traj = trial
    gap = traj.select(traj.names)
    j = gap.names.index("RWrist")
    gap.xyz[2:4, j] = np.nan
    a = OpenSimSolverIK().solve(model_path, gap)
    b = JacobianIK().solve(model_path, gap)
    k = a.marker_names.index("RWrist")
    assert np.all(np.isnan(a.marker_errors[2:4, k])) and np.all(np.isfinite(a.marker_errors[[0, 1, 4, 5], k]))
    np.testing.assert_array_equal(a.n_markers, [len(a.marker_names)] * 2 + [len(a.marker_names) - 1] * 2
                                  + [len(a.marker_names)] * 2)
    print("rms mm", 1000 * a.rms, 1000 * b.rms)
    assert np.all(a.rms < 5e-3) and np.mean(b.rms) < np.mean(a.rms)
    flex = np.rad2deg(np.abs(a.column("L5_S1_Flex_Ext") - b.column("L5_S1_Flex_Ext")))
    assert flex.max() < 1.5
    # A strong coordinate task is honoured: L5_S1 flexion held at 0.3 rad against the markers.
    two = Trajectories(traj.time[:2], traj.names, traj.xyz[:2], traj.conf[:2])
    task = [{"coordinate": "L5_S1_Flex_Ext", "value": 0.3, "weight": 1e4}]
    held = OpenSimSolverIK().solve(model_path, two, coordinate_tasks=task)
    np.testing.assert_allclose(held.column("L5_S1_Flex_Ext"), 0.3, atol=2e-3)
    assert np.all(np.abs(mot.column("L5_S1_Flex_Ext")[:2] - 0.3) > 0.05)
    np.testing.assert_array_equal(a.time, traj.time)
    assert a.backend == "opensim-solver" and a.time.dtype == np.float64


def test_progress_bars(model_path, trial, capsys):
    """progress=True: a tqdm bar per backend on stderr, named and counting frames."""
    _, traj = trial
    two = Trajectories(traj.time[:2], traj.names, traj.xyz[:2], traj.conf[:2])
    JacobianIK(restarts=0).solve(model_path, two, progress=True)
    OpenSimSolverIK().solve(model_path, two, progress=True)
    err = capsys.readouterr().err
    assert "IK (jacobian)" in err and "IK (opensim solver)" in err
    assert "2/2" in err and "frame/s" in err


def test_quaternion_joints_refused(tmp_path):
    """A model with a free and a ball joint (OpenSim uses quaternions for them: 11 q, 9 u):
    JacobianIK needs q' = u and says so."""
    import opensim as osim

    m = osim.Model()
    bodies = []
    for name, parent, joint in (("a", None, osim.FreeJoint), ("b", "a", osim.BallJoint)):
        body = osim.Body(name, 1.0, osim.Vec3(0), osim.Inertia(0.1))
        m.addBody(body)
        m.addJoint(joint(f"j_{name}", m.getGround() if parent is None else bodies[-1], body))
        bodies.append(body)
    for i, (body, at) in enumerate(((0, 0.0), (0, 0.2), (1, 0.1))):
        m.addMarker(osim.Marker(f"M{i}", bodies[body], osim.Vec3(at, 0.1 * i, 0.0)))
    m.finalizeConnections()
    path = tmp_path / "quat.osim"
    m.printToXML(str(path))
    traj = Trajectories(np.array([0.0]), ["M0", "M1", "M2"], np.array([[[0, 0, 0], [0.2, 0.1, 0], [0.1, 0.2, 0]]], float))
    with pytest.raises(InputError) as e:
        JacobianIK().solve(str(path), traj, coordinate_tasks=[])
    assert str(e.value) == "model has quaternion joints; JacobianIK needs q' = u"


def test_dependent_coordinate_without_coupler_refused(model_path, trial, monkeypatch):
    """JacobianIK eliminates dependent coordinates through their linear couplers; a dependent
    coordinate none of the couplers drives (here: the couplers hidden) is refused by name."""
    _, traj = trial
    dependent = [c.name for c in coordinate_info(Kinematics(model_path).model) if c.dependent]
    assert len(dependent) >= 2
    monkeypatch.setattr(ik_module, "coupler_constraints", lambda model: [])
    with pytest.raises(InputError) as e:
        JacobianIK().solve(model_path, traj)
    assert str(e.value) == "dependent coordinates without a linear coupler: " + ", ".join(dependent)


def test_negative_confidences_refused(model_path, trial):
    _, traj = trial
    neg = traj.select(traj.names)
    neg.conf[1, 3] = -0.5
    with pytest.raises(InputError) as e:
        JacobianIK().solve(model_path, neg)
    assert str(e.value) == "negative marker confidences"


def test_solve_trials_reports_each_trial(model_path, trial, tmp_path, capsys):
    """progress=True prints a line per trial: done in the pool (trial number, frames), solved in
    this process (frames, seconds) or skipped (its finished .mot named)."""
    import re

    from simspine.biomech.ik import IKJob, solve_trials

    _, traj = trial
    a = IKJob(model_path, Trajectories(traj.time[:2], traj.names, traj.xyz[:2], traj.conf[:2]))
    b = IKJob(model_path, Trajectories(traj.time[:3], traj.names, traj.xyz[:3], traj.conf[:3]),
              out_mot=str(tmp_path / "b.mot"))
    pooled = solve_trials([a, b], workers=2, progress=True)
    assert capsys.readouterr().out.splitlines() == ["trial 1/2 done (2 frames)", "trial 2/2 done (3 frames)"]
    again = solve_trials([a, b], workers=2, progress=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"trial 2/2: {tmp_path / 'b.mot'} exists, skipped"
    assert len(out) == 2 and re.fullmatch(r"trial 1/2: 2 frames in \d+\.\d s", out[1])
    np.testing.assert_allclose(again[0].values, pooled[0].values, atol=1e-12)
    assert again[1].meta["resumed_from"] == str(tmp_path / "b.mot")
