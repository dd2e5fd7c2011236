"""The prepared model: stripping, marker set, placement against bone meshes, cache, FK basics."""

import numpy as np
import pytest

from simspine.biomech import model as M
from simspine.biomech.fk import (
    SPINE_SEGMENTS,
    CoordinateTable,
    intervertebral_coordinate_names,
    run_fk,
)
from simspine.skeletons import spinetrack37, spinetrack37_info


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return M.prepare_model(cache_dir=tmp_path_factory.mktemp("cache"))


def test_prepared_model_is_stripped_and_has_37_markers(model_path):
    m = M.load_model(model_path)
    m.initSystem()
    assert m.getForceSet().getSize() == 0
    assert m.getContactGeometrySet().getSize() == 0
    assert m.getConstraintSet().getSize() == 20  # couplers kept by default
    ms = m.getMarkerSet()
    assert [ms.get(i).getName() for i in range(ms.getSize())] == list(spinetrack37().names)
    free = [c.name for c in M.free_coordinates(m)]
    # 3 effective lumbar DOF, neck 3, pelvis 6: the 40 independent coordinates.
    assert len(free) == 40
    assert {"L5_S1_Flex_Ext", "L5_S1_Lat_Bending", "L5_S1_axial_rotation", "neck_flexion"} <= set(free)
    assert "L4_L5_Flex_Ext" not in free


def test_coupler_constraints_read_once_for_fk_and_ik(model_path):
    m = M.load_model(model_path)
    m.initSystem()
    cps = M.coupler_constraints(m)
    assert len(cps) == 20
    lumbar = [c for c in cps if c.dependent.startswith("L4_L5")]
    assert len(lumbar) == 3
    assert all(c.independent == ("L5_S1" + c.dependent[5:],) for c in lumbar)  # L4_L5_x follows L5_S1_x
    # Every dependent coordinate is driven by exactly one coupler; the free ones by none.
    dep = {c.name for c in M.coordinate_info(m) if c.dependent}
    assert sorted(c.dependent for c in cps) == sorted(dep)
    assert not dep & {c.name for c in M.free_coordinates(m)}


def test_cache_reuses_file_and_options_change_key(tmp_path):
    p1 = M.prepare_model(cache_dir=tmp_path)
    mtime = p1.stat().st_mtime_ns
    assert M.prepare_model(cache_dir=tmp_path) == p1 and p1.stat().st_mtime_ns == mtime
    p2 = M.prepare_model(cache_dir=tmp_path, lumbar_coupling=False)
    assert p2 != p1
    m = M.load_model(p2)
    m.initSystem()
    assert m.getConstraintSet().getSize() == 5  # 15 lumbar couplers dropped
    assert len(M.free_coordinates(m)) == 40 + 15
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_marker_places_match_sources():
    places = {m.name: m for m in M.spinetrack37_markers()}
    vms = spinetrack37_info().virtual_markers
    for name, vm in vms.items():
        assert places[name].body == vm.body and places[name].offset_m == vm.offset_m
    # Halpe26 place of the left knee (Pose2Sim Markers_Halpe26.xml).
    assert places["LKnee"].body == "femur_l"
    assert np.allclose(places["LKnee"].offset_m, (-0.00541048, -0.397886, -0.000611877))
    # Eyes and ears mirror each other (z to the right).
    for a, b in (("LEye", "REye"), ("LEar", "REar")):
        pa, pb = np.array(places[a].offset_m), np.array(places[b].offset_m)
        assert np.allclose(pa * [1, 1, -1], pb) and pa[2] < 0


def test_ears_sit_on_the_skull_surface():
    _, skull = M.mesh_points_in_body("skull.vtp", "head")
    x, y, z = M.EAR_OFFSET_M
    band = skull[(np.abs(skull[:, 1] - y) < 0.01) & (np.abs(skull[:, 0] - x) < 0.015)]
    half_width = np.abs(band[:, 2]).max()
    assert 0.0 < z - half_width < 0.005  # just outside the bone


def test_published_spine_markers_lie_in_their_vertebra():
    """Each vertebral marker is inside its vertebra's mesh box, on the midline; the thoraco-lumbar
    ones are posterior (see the model docstring), 40-60 mm behind the vertebral-body centroid."""
    vms = spinetrack37_info().virtual_markers
    cents = M.vertebral_body_centroids()
    for name, (body, mesh) in M.VERTEBRA_OF_MARKER.items():
        _, pts = M.mesh_points_in_body(mesh, body)
        o = np.array(vms[name].offset_m)
        assert vms[name].body == body
        assert np.all(o >= pts.min(0) - 1e-3) and np.all(o <= pts.max(0) + 1e-3), name
        assert abs(o[2]) < 2e-3
        d = np.linalg.norm(o - cents[name][1])
        if name in ("Spine_01", "Spine_02", "Spine_03", "Spine_04", "Spine_05"):
            assert 0.040 < d < 0.060, (name, d)
            assert o[0] < cents[name][1][0]  # posterior
        if name in ("Neck_02", "Neck_03"):
            assert d < 0.012, (name, d)


def test_body_centroid_option_moves_markers_forward():
    pub = {m.name: np.array(m.offset_m) for m in M.spinetrack37_markers("published")}
    cen = {m.name: np.array(m.offset_m) for m in M.spinetrack37_markers("body_centroid")}
    for n in M.CENTROID_MOVABLE:
        assert cen[n][0] > pub[n][0] + 0.02
    assert np.allclose(cen["Neck_03"], pub["Neck_03"])
    with pytest.raises(ValueError, match="spine_placement"):
        M.spinetrack37_markers("nowhere")


def test_fk_default_pose_keypoints_and_zero_rotations(kin, model_path):
    kin.set_defaults()
    kp = kin.keypoints()
    st = spinetrack37()
    # Markers on the pelvis: Hip at its offset from the pelvis origin (pelvis_ty default 0.94 m).
    assert np.allclose(kp[st.index("Hip")], [-0.1563, 0.94 + 0.0041, 0.0], atol=1e-9)
    # Symmetric default pose: left/right keypoints mirror in z.
    sw = np.array(st.swap)
    paired = sw != np.arange(len(sw))
    assert paired.sum() == 26
    assert np.allclose(kp[sw[paired]] * [1, 1, -1], kp[paired], atol=1e-6)
    assert np.all(np.abs(kp[~paired, 2]) < 2e-3)  # midline points (published offsets: |z| <= 1.5 mm)
    assert np.allclose(kin.segment_euler_deg(), 0.0, atol=1e-6)  # neck defaults are ~1e-10 rad


def test_fk_lumbar_couplers_and_segment_euler(kin):
    kin.set_defaults()
    kin.set_coordinates({"L5_S1_Flex_Ext": -0.1, "L5_S1_Lat_Bending": 0.02, "L5_S1_axial_rotation": 0.05})
    c = kin.get_coordinates()
    # Coupling ratios of the model (flexion: 1.857 at L4-L5).
    assert c["L4_L5_Flex_Ext"] == pytest.approx(-0.1 * 1.8571, abs=1e-9)
    assert c["L1_T12_axial_rotation"] == pytest.approx(0.05 * 0.75, abs=1e-9)
    e = kin.segment_euler_deg()
    # lumbar5 relative to pelvis = L5_S1's Z-X-Y rotation exactly.
    assert np.allclose(e[0], np.rad2deg([-0.1, 0.02, 0.05]), atol=1e-9)
    # Pure flexion: each segment's flexion is the running sum of the joint flexions below it.
    kin.set_defaults()
    kin.set_coordinates({"L5_S1_Flex_Ext": -0.1})
    c = kin.get_coordinates()
    e = kin.segment_euler_deg()
    sums = np.cumsum([c[f"{j}_Flex_Ext"] for j in ("L5_S1", "L4_L5", "L3_L4", "L2_L3", "L1_L2", "L1_T12")])
    assert np.allclose(e[:6, 0], np.rad2deg(sums), atol=1e-9)
    assert np.allclose(e[:6, 1:], 0.0, atol=1e-9)


def test_run_fk_table(kin):
    T = 5
    names = ["pelvis_tx", "L5_S1_Flex_Ext", "neck_flexion", "not_a_coordinate"]
    vals = np.zeros((T, 4))
    vals[:, 0] = np.linspace(0, 0.4, T)
    vals[:, 1] = -0.05
    vals[:, 2] = 0.3
    traj, rots = run_fk(kin, CoordinateTable(np.arange(T) / 50, names, vals))
    assert traj.xyz.shape == (T, 37, 3) and traj.frame.startswith("opensim-ground")
    # Translation of the pelvis moves every keypoint by the same amount.
    assert np.allclose(traj.xyz[-1] - traj.xyz[0], [0.4, 0, 0], atol=1e-9)
    iv = rots.intervertebral_names
    assert iv == intervertebral_coordinate_names()
    assert np.allclose(rots.intervertebral_deg[:, iv.index("neck_flexion")], np.rad2deg(0.3))
    assert rots.segment_euler_deg.shape == (T, len(SPINE_SEGMENTS), 3)
    vals[2, 1] = np.nan
    with pytest.raises(ValueError, match="L5_S1_Flex_Ext"):
        run_fk(kin, CoordinateTable(np.arange(T) / 50, names, vals))


def test_fk_from_mot_file(kin, tmp_path):
    """A .mot in degrees (OpenSim's convention) gives the same keypoints as the radians table."""
    from simspine.biomech.fk import coordinates_from_mot
    from simspine.io.mot import write_mot

    T = 4
    names = ["pelvis_ty", "L5_S1_Flex_Ext", "neck_rotation", "knee_angle_r"]
    vals = np.array([[0.9, -0.1, 0.2, 0.5]] * T) + np.linspace(0, 0.05, T)[:, None]
    deg = vals.copy()
    deg[:, 1:] = np.rad2deg(deg[:, 1:])
    path = write_mot(tmp_path / "c.mot", np.arange(T) / 50, names, deg, in_degrees=True)
    table = coordinates_from_mot(path, kin.coordinates)
    assert np.allclose(table.values, vals)
    a, ra = run_fk(kin, table)
    b, rb = run_fk(kin, CoordinateTable(np.arange(T) / 50, names, vals))
    assert np.allclose(a.xyz, b.xyz) and np.allclose(ra.segment_euler_deg, rb.segment_euler_deg)


def test_fk_command(model_path, tmp_path, monkeypatch):
    from simspine.cli import main
    from simspine.io.mot import write_mot
    from simspine.io.trc import read_trc

    monkeypatch.setenv("SIMSPINE_CACHE", str(model_path.parent))
    path = write_mot(tmp_path / "m.mot", [0.0, 0.02], ["L5_S1_Flex_Ext", "neck_flexion"],
                     [[-5.0, 10.0], [-6.0, 12.0]], in_degrees=True)
    assert main(["fk", str(path), "--out", str(tmp_path / "o")]) == 0
    kp = read_trc(tmp_path / "o" / "keypoints37.trc")
    assert kp.xyz.shape == (2, 37, 3) and kp.frame.startswith("opensim-ground")
    rot = np.load(tmp_path / "o" / "rotations.npz")
    names = list(rot["intervertebral_names"])
    assert np.allclose(rot["intervertebral_deg"][:, names.index("neck_flexion")], [10.0, 12.0])
    assert np.allclose(rot["segment_euler_deg"][:, 0, 0], [-5.0, -6.0])  # lumbar5 flexion = L5_S1


def test_mot_with_unknown_or_non_finite_coordinates_is_refused(kin, tmp_path):
    """A .mot of another model (unknown coordinate names) or with NaN values: InputError naming the file."""
    from simspine.biomech.fk import coordinates_from_mot
    from simspine.errors import InputError
    from simspine.io.mot import write_mot

    other = write_mot(tmp_path / "other.mot", [0.0, 0.02], ["L5_S1_Flex_Ext", "lumbar_extension"],
                      [[1.0, 2.0], [1.0, 2.0]], in_degrees=True)
    with pytest.raises(InputError, match="other.mot: 1 column.* not coordinates of the model: lumbar_extension"):
        coordinates_from_mot(other, kin.coordinates)
    nan = write_mot(tmp_path / "nan.mot", [0.0, 0.02], ["L5_S1_Flex_Ext", "neck_flexion"],
                    [[1.0, 2.0], [np.nan, 2.0]], in_degrees=True)
    with pytest.raises(InputError, match="nan.mot: non-finite coordinate values in: L5_S1_Flex_Ext"):
        coordinates_from_mot(nan, kin.coordinates)
    empty = write_mot(tmp_path / "empty.mot", np.zeros(0), ["L5_S1_Flex_Ext"], np.zeros((0, 1)), in_degrees=True)
    with pytest.raises(InputError, match="empty.mot: no frames"):
        coordinates_from_mot(empty, kin.coordinates)
