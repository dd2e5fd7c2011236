"""Batched forward kinematics (simspine.biomech.batched_fk) against OpenSim's own FK.

Random poses within the coordinate ranges, on the prepared model, a scaled model and with moved
markers: every marker (the 37 SpineTrack-37 keypoints, virtual vertebral markers included), every
body transform and every coordinate must match OpenSim within 1e-6 m / 1e-9 (the measured errors
are ~1e-15); the analytic Jacobian must match central differences of OpenSim's FK.
"""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from simspine.biomech.batched_fk import BatchedKinematics, simm_spline_coefficients, zxy_euler_deg
from simspine.biomech.fk import Kinematics, run_fk
from simspine.biomech.ik import _Kinematic
from simspine.biomech.model import load_model, prepare_model
from simspine.biomech.motion import random_motion
from simspine.biomech.scaling import generic_stature, scale_model, segment_names
from simspine.errors import InputError
from simspine.skeletons import spinetrack37


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return prepare_model(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def engine(model_path):
    return BatchedKinematics.from_model(str(model_path))


@pytest.fixture(scope="module")
def kin(model_path):
    return Kinematics(str(model_path))


@pytest.fixture(scope="module")
def scaled_path(model_path, tmp_path_factory):
    rng = np.random.default_rng(5)
    base = 1.85 / generic_stature(model_path)
    f = {s: base * rng.uniform(0.9, 1.1) for s in segment_names()}
    return scale_model(f, tmp_path_factory.mktemp("scaled") / "scaled.osim", 80.0, model_path)


def random_poses(bk, n, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(bk.range_lower.numpy(), bk.range_upper.numpy(), size=(n, len(bk.independent_names)))


def opensim_markers(kin, names, free_names, z):
    out = np.empty((len(z), len(names), 3))
    for i, zi in enumerate(z):
        kin.set_coordinates(dict(zip(free_names, zi, strict=True)))
        out[i] = kin.marker_positions(names)
    return out


def opensim_jacobian(kin, names, free_names, z, h=1e-6):
    """Central differences of OpenSim's marker positions, [M, 3, n]."""
    cols = []
    for k in range(len(z)):
        zp, zm = z.copy(), z.copy()
        zp[k] += h
        zm[k] -= h
        xp = opensim_markers(kin, names, free_names, zp[None])[0]
        xm = opensim_markers(kin, names, free_names, zm[None])[0]
        cols.append((xp - xm) / (2 * h))
    return np.stack(cols, -1)


def test_interface_matches_jacobian_ik_bookkeeping(engine, model_path):
    model = load_model(model_path)
    state = model.initSystem()
    ref = _Kinematic(model, state)
    assert engine.independent_names == ref.free_names
    np.testing.assert_array_equal(engine.lower.numpy(), ref.lo)
    np.testing.assert_array_equal(engine.upper.numpy(), ref.hi)
    cs = model.getCoordinateSet()
    assert engine.coordinate_names == [cs.get(i).getName() for i in range(cs.getSize())]
    assert engine.body_names == [model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())]
    assert list(spinetrack37().names) == engine.marker_names[:37]


def test_1000_random_poses_match_opensim(engine, kin):
    """Issue 15: every marker (virtual vertebral ones included) within 1e-6 m of OpenSim."""
    z = random_poses(engine, 1000, seed=1)
    X = engine.markers(torch.tensor(z)).numpy()
    ref = opensim_markers(kin, engine.marker_names, engine.independent_names, z)
    err = np.linalg.norm(X - ref, axis=-1)
    print(f"max marker error over 1000 poses x {len(engine.marker_names)} markers: {err.max():.3g} m")
    assert err.max() < 1e-6
    # Keypoints are the SpineTrack-37 markers in order.
    np.testing.assert_allclose(engine.keypoints37(torch.tensor(z[:5])).numpy(), X[:5, :37], atol=0)


def test_body_transforms_and_coordinates_match_opensim(engine, kin):
    z = random_poses(engine, 60, seed=2)
    R, p = engine.body_transforms(torch.tensor(z))
    q = engine.full_coordinates(torch.tensor(z)).numpy()
    for i, zi in enumerate(z):
        kin.set_coordinates(dict(zip(engine.independent_names, zi, strict=True)))
        cur = kin.get_coordinates()
        np.testing.assert_allclose(q[i], [cur[n] for n in engine.coordinate_names], atol=1e-12)
        for b, name in enumerate(engine.body_names):
            np.testing.assert_allclose(R[i, b].numpy(), kin.body_rotation(name), atol=1e-9)
            np.testing.assert_allclose(p[i, b].numpy(), kin.body_origin(name), atol=1e-9)


def test_stations_are_points_on_bodies(engine, kin):
    z = random_poses(engine, 3, seed=3)
    bodies = ["pelvis", "lumbar3", "torso", "hand_l", "toes_r"]
    loc = np.random.default_rng(0).normal(0, 0.1, (len(bodies), 3))
    S = engine.stations(torch.tensor(z), bodies, torch.tensor(loc)).numpy()
    for i, zi in enumerate(z):
        kin.set_coordinates(dict(zip(engine.independent_names, zi, strict=True)))
        for s, b in enumerate(bodies):
            np.testing.assert_allclose(S[i, s], kin.body_origin(b) + kin.body_rotation(b) @ loc[s], atol=1e-12)
    S2, dS = engine.stations_and_jacobian(torch.tensor(z), bodies, loc)
    np.testing.assert_allclose(S2.numpy(), S, atol=1e-14)
    assert dS.shape == (3, len(bodies), 3, len(engine.independent_names))


def test_keypoints_and_vertebral_rotations_match_fk(engine, kin):
    """The batched keypoints and per-vertebra rotations equal simspine.biomech.fk's on a motion."""
    mot = random_motion(kin, 25, rate=10.0, seed=4)
    traj, rots = run_fk(kin, mot)
    z = np.stack([mot.column(n) for n in engine.independent_names], 1)
    kp = engine.keypoints37(torch.tensor(z)).numpy()
    np.testing.assert_allclose(kp, traj.xyz, atol=1e-9)
    seg = engine.segment_euler_deg(torch.tensor(z)).numpy()
    np.testing.assert_allclose(seg, rots.segment_euler_deg, atol=1e-7)
    q = engine.full_coordinates(torch.tensor(z)).numpy()
    iv = np.rad2deg(q[:, [engine.coordinate_names.index(n) for n in rots.intervertebral_names]])
    np.testing.assert_allclose(iv, rots.intervertebral_deg, atol=1e-9)


def test_jacobian_matches_opensim_finite_differences(engine, kin):
    z = random_poses(engine, 3, seed=5)
    X, J = engine.markers_and_jacobian(torch.tensor(z))
    np.testing.assert_allclose(X.numpy(), engine.markers(torch.tensor(z)).numpy(), atol=1e-15)
    for i in range(len(z)):
        ref = opensim_jacobian(kin, engine.marker_names, engine.independent_names, z[i])
        err = np.abs(J[i].numpy() - ref).max()
        assert err < 2e-7, err
    # Large batches are done block by block: same result.
    blocked = engine
    blocked.JACOBIAN_BLOCK = 2
    try:
        Xb, Jb = blocked.markers_and_jacobian(torch.tensor(z))
    finally:
        del blocked.JACOBIAN_BLOCK
    np.testing.assert_array_equal(Jb.numpy(), J.numpy())
    np.testing.assert_array_equal(Xb.numpy(), X.numpy())
    # Columns for a marker subset are the same rows.
    names = ["Spine_03", "LWrist", "RHeel"]
    Xs, Js = engine.markers_and_jacobian(torch.tensor(z), names)
    rows = [engine.marker_names.index(n) for n in names]
    np.testing.assert_allclose(Js.numpy(), J[:, rows].numpy(), atol=1e-15)


def test_scaled_model_and_moved_markers(scaled_path):
    bk = BatchedKinematics.from_model(scaled_path)
    model = load_model(scaled_path)
    rng = np.random.default_rng(6)
    moved = ["Spine_02", "LShoulder", "RAnkle", "Head"]
    bodies = ["lumbar3", "torso", "tibia_r", "head"]  # Head moves to another body
    loc = rng.normal(0, 0.05, (len(moved), 3))
    bk.set_marker_locations(moved + ["extra"], bodies + ["femur_l"], np.vstack([loc, [0.01, -0.2, 0.05]]))
    ms = model.getMarkerSet()
    import opensim as osim

    for n, b, xyz in zip(moved, bodies, loc, strict=True):
        m = ms.get(n)
        m.setParentFrameName(f"/bodyset/{b}")
        m.set_location(osim.Vec3(*xyz))
    model.addMarker(osim.Marker("extra", model.getBodySet().get("femur_l"), osim.Vec3(0.01, -0.2, 0.05)))
    model.finalizeConnections()
    kin = Kinematics(model)
    assert bk.marker_names[-1] == "extra"
    z = random_poses(bk, 200, seed=7)
    err = np.linalg.norm(bk.markers(torch.tensor(z)).numpy()
                         - opensim_markers(kin, bk.marker_names, bk.independent_names, z), axis=-1)
    assert err.max() < 1e-6
    _, J = bk.markers_and_jacobian(torch.tensor(z[:1]))
    ref = opensim_jacobian(kin, bk.marker_names, bk.independent_names, z[0])
    assert np.abs(J[0].numpy() - ref).max() < 2e-7


@pytest.mark.parametrize("n", [2, 3, 4, 5, 13])
def test_simm_spline_matches_opensim(n):
    import opensim as osim

    rng = np.random.default_rng(n)
    x = np.sort(rng.uniform(-2, 2, n))
    y = rng.normal(0, 1, n)
    sp = osim.SimmSpline()
    for xi, yi in zip(x, y, strict=True):
        sp.addPoint(float(xi), float(yi))
    from simspine.biomech.batched_fk import _SimmSpline

    f = _SimmSpline(x, y)
    pts = np.concatenate([np.linspace(x[0] - 0.5, x[-1] + 0.5, 400), x])
    v, dv = f(torch.tensor(pts))
    ref = [sp.calcValue(osim.Vector(1, float(t))) for t in pts]
    dref = [sp.calcDerivative(osim.StdVectorInt([0]), osim.Vector(1, float(t))) for t in pts]
    np.testing.assert_allclose(v.numpy(), ref, atol=1e-12)
    inside = (pts > x[0]) & (pts < x[-1]) & ~np.isin(pts, x)
    np.testing.assert_allclose(dv.numpy()[inside], np.array(dref)[inside], atol=1e-10)
    assert len(simm_spline_coefficients(x, y)[0]) == n


def test_zxy_euler_matches_scipy():
    R = Rotation.random(50, random_state=1)
    mats = torch.tensor(R.as_matrix())
    np.testing.assert_allclose(zxy_euler_deg(mats).numpy(), R.as_euler("ZXY", degrees=True), atol=1e-9)


def _chain_model(kinds):
    """Bodies b0..bn chained by joints of ``kinds`` (rotated, offset joint frames), a marker on
    each body, every coordinate's range +-1.2."""
    import opensim as osim

    model = osim.Model()
    parent = model.getGround()
    rng = np.random.default_rng(11)
    for i, kind in enumerate(kinds):
        body = osim.Body(f"b{i}", 1.0, osim.Vec3(0), osim.Inertia(0.1))
        model.addBody(body)
        v = [osim.Vec3(*rng.uniform(-0.3, 0.3, 3)) for _ in range(4)]
        args = (f"j{i}_{kind}", parent, v[0], v[1], body, v[2], v[3])
        if kind == "EllipsoidJoint":
            args = args + (osim.Vec3(0.1, 0.2, 0.3),)
        model.addJoint(getattr(osim, kind)(*args))
        model.addMarker(osim.Marker(f"m{i}", body, osim.Vec3(*rng.uniform(-0.2, 0.2, 3))))
        parent = body
    # A marker on a rotated offset frame of the last body.
    frame = osim.PhysicalOffsetFrame("tool", parent, osim.Transform(osim.Rotation(0.7, osim.Vec3(0.3, 0.5, 0.8)),
                                                                    osim.Vec3(0.1, -0.05, 0.2)))
    parent.addComponent(frame)
    model.finalizeConnections()
    model.addMarker(osim.Marker("on_frame", frame, osim.Vec3(0.02, 0.03, -0.04)))
    model.finalizeConnections()
    cs = model.updCoordinateSet()
    for k in range(cs.getSize()):
        cs.get(k).setRangeMin(-1.2)
        cs.get(k).setRangeMax(1.2)
    return model


def test_other_joint_types_match_opensim():
    kinds = ["FreeJoint", "GimbalJoint", "BallJoint", "SliderJoint", "PlanarJoint", "UniversalJoint",
             "PinJoint", "WeldJoint"]
    model = _chain_model(kinds)
    bk = BatchedKinematics.from_model(model)
    kin = Kinematics(model)
    assert bk.marker_names[-1] == "on_frame"
    z = random_poses(bk, 50, seed=12)
    ref = opensim_markers(kin, bk.marker_names, bk.independent_names, z)
    assert np.abs(bk.markers(torch.tensor(z)).numpy() - ref).max() < 1e-12
    _, J = bk.markers_and_jacobian(torch.tensor(z[:2]))
    for i in range(2):
        assert np.abs(J[i].numpy() - opensim_jacobian(kin, bk.marker_names, bk.independent_names, z[i])).max() < 2e-7


def test_unsupported_joint_is_named():
    model = _chain_model(["PinJoint", "EllipsoidJoint"])
    with pytest.raises(InputError, match="j1_EllipsoidJoint is a EllipsoidJoint"):
        BatchedKinematics.from_model(model)


def test_nonlinear_coupler_and_bad_input(model_path):
    """A coupler driven by a spline (not eliminable linearly) is evaluated with its derivative."""
    import opensim as osim

    model = load_model(model_path)
    cs = model.updConstraintSet()
    for i in range(cs.getSize()):
        c = osim.CoordinateCouplerConstraint.safeDownCast(cs.get(i))
        if c is not None and c.getDependentCoordinateName() == "knee_angle_r_beta":
            sp = osim.SimmSpline()
            for xi, yi in [(0.0, 0.0), (0.5, 0.6), (1.0, 0.9), (1.5, 1.6), (2.1, 2.0)]:
                sp.addPoint(xi, yi)
            c.setFunction(sp)
    model.finalizeConnections()
    bk = BatchedKinematics.from_model(model)
    kin = Kinematics(model)
    z = random_poses(bk, 20, seed=8)
    ref = opensim_markers(kin, bk.marker_names, bk.independent_names, z)
    assert np.abs(bk.markers(torch.tensor(z)).numpy() - ref).max() < 1e-9
    _, J = bk.markers_and_jacobian(torch.tensor(z[:1]))
    assert np.abs(J[0].numpy() - opensim_jacobian(kin, bk.marker_names, bk.independent_names, z[0])).max() < 2e-7
    with pytest.raises(InputError, match="z must be"):
        bk.markers(torch.zeros(3, 5))
    with pytest.raises(InputError, match="no marker"):
        bk.markers(torch.tensor(z), ["NoSuchMarker"])
    with pytest.raises(InputError, match="no body"):
        bk.set_marker_locations(["X"], ["nobody"], [[0, 0, 0]])
    with pytest.raises(InputError, match="shape"):
        bk.set_marker_locations(["X", "Y"], ["pelvis", "pelvis"], [[0, 0, 0]])
    with pytest.raises(InputError, match="non-finite"):
        bk.set_marker_locations(["X"], ["pelvis"], [[0, np.nan, 0]])
    assert "X" not in bk.marker_names


def test_analytic_jacobian_equals_forward_mode_autodiff(engine):
    """Cross-check of the analytic Jacobian by torch's forward-mode AD through the same FK."""
    import torch.autograd.forward_ad as fwAD

    z = torch.tensor(random_poses(engine, 2, seed=9))
    _, J = engine.markers_and_jacobian(z)
    # Forward-mode AD is slow here (dual tensors through every op): two telling columns (the
    # coupled lumbar spine, a spline-driven knee with its coupled patella).
    for name in ("L5_S1_Flex_Ext", "knee_angle_r"):
        k = engine.independent_names.index(name)
        with fwAD.dual_level():
            t = torch.zeros_like(z)
            t[:, k] = 1.0
            col = fwAD.unpack_dual(engine.markers(fwAD.make_dual(z, t))).tangent
        np.testing.assert_allclose(J[..., k].numpy(), col.numpy(), atol=1e-12)


def _model_with_knee_function(model_path, tmp_path, function_xml):
    """A copy of the model whose walker_knee_r rotation2 (a SimmSpline of knee_angle_r) is
    replaced by ``function_xml`` (edited as XML: swapping functions through the API crashes)."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(model_path)
    joint = next(j for j in tree.getroot().iter("CustomJoint") if j.get("name") == "walker_knee_r")
    axis = next(a for a in joint.iter("TransformAxis") if a.get("name") == "rotation2")
    old = next(c for c in axis if c.get("name") == "function")
    axis.remove(old)
    axis.append(ET.fromstring(function_xml))
    out = tmp_path / "knee_function.osim"
    tree.write(out)
    return load_model(out)


def test_polynomial_axis_matches_opensim_and_unsupported_function_is_named(model_path, tmp_path):
    # PolynomialFunction coefficients: highest power first.
    model = _model_with_knee_function(model_path, tmp_path, '<PolynomialFunction name="function">'
                                      "<coefficients>0.05 -0.2 0.01</coefficients></PolynomialFunction>")
    bk = BatchedKinematics.from_model(model)
    kin = Kinematics(model)
    z = random_poses(bk, 20, seed=10)
    ref = opensim_markers(kin, bk.marker_names, bk.independent_names, z)
    assert np.abs(bk.markers(torch.tensor(z)).numpy() - ref).max() < 1e-9
    _, J = bk.markers_and_jacobian(torch.tensor(z[:1]))
    assert np.abs(J[0].numpy() - opensim_jacobian(kin, bk.marker_names, bk.independent_names, z[0])).max() < 2e-7

    model2 = _model_with_knee_function(model_path, tmp_path, '<StepFunction name="function">'
                                       "<start_time>0</start_time><end_time>1</end_time>"
                                       "<start_value>0</start_value><end_value>0.1</end_value></StepFunction>")
    with pytest.raises(InputError, match="walker_knee_r axis 1.*StepFunction"):
        BatchedKinematics.from_model(model2)
