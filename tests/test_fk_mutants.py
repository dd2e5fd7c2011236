"""Forward-kinematics details that mutation testing showed the other tests did not pin (issue 16):
full error texts, the conversions and defaults of run_fk's output, Kinematics' accessors against
each other and against the coordinates that were set."""

import numpy as np
import pytest

from simspine.biomech import model as M
from simspine.biomech.fk import (
    GROUND_FRAME,
    SPINE_SEGMENTS,
    CoordinateTable,
    Kinematics,
    coordinates_from_mot,
    run_fk,
)
from simspine.errors import InputError
from simspine.io.mot import write_mot
from simspine.skeletons import spinetrack37


@pytest.fixture(scope="module")
def kin(tmp_path_factory):
    return Kinematics(M.prepare_model(cache_dir=tmp_path_factory.mktemp("cache")))


def test_unknown_columns_message_lists_ten(kin, tmp_path):
    many = [f"u{i}" for i in range(12)]
    p = write_mot(tmp_path / "many.mot", [0.0], many, np.zeros((1, 12)), in_degrees=True)
    with pytest.raises(InputError) as e:
        coordinates_from_mot(p, kin.coordinates)
    assert str(e.value).endswith("12 column(s) are not coordinates of the model: "
                                 "u0, u1, u2, u3, u4, u5, u6, u7, u8, u9 ...")
    few = write_mot(tmp_path / "few.mot", [0.0], ["neck_flexion", "a", "b"], np.zeros((1, 3)), in_degrees=True)
    with pytest.raises(InputError) as e:
        coordinates_from_mot(few, kin.coordinates)
    assert str(e.value).endswith("2 column(s) are not coordinates of the model: a, b")


def test_run_fk_output_conventions(kin, capsys):
    names = ["neck_flexion", "L5_S1_Flex_Ext", "pelvis_ty"]
    vals = np.array([[0, 0, 1], [0, 0, 1]])  # integers: read as floats
    table = CoordinateTable(np.array([0, 1]), names, vals)
    traj, rots = run_fk(kin, table, progress=True)
    assert "forward kinematics" in capsys.readouterr().err
    assert traj.time.dtype == float and traj.names == list(spinetrack37().names)
    assert traj.conf.shape == (2, 37) and (traj.conf == 1.0).all()
    assert traj.frame == GROUND_FRAME
    ref, _ = run_fk(kin, CoordinateTable(np.array([0.0, 1.0]), names, vals.astype(float)))
    np.testing.assert_array_equal(traj.xyz, ref.xyz)
    assert rots.segment_bodies == [b for b, _ in SPINE_SEGMENTS]
    bad = np.zeros((2, 3))
    bad[0, 0] = np.nan
    bad[1, 1] = np.inf
    with pytest.raises(InputError) as e:
        run_fk(kin, CoordinateTable(np.arange(2.0), names, bad))
    assert str(e.value).endswith("non-finite coordinate values in: L5_S1_Flex_Ext, neck_flexion")
    with pytest.raises(InputError, match="no column named like a model coordinate"):
        run_fk(kin, CoordinateTable(np.arange(2.0), ["x"], np.zeros((2, 1))))


def test_kinematics_accessors_agree(kin):
    kin.set_defaults()
    kin.set_coordinates({"pelvis_tx": 0.1, "pelvis_ty": 0.9, "pelvis_tz": -0.2, "L5_S1_Flex_Ext": 0.1})
    cur = kin.get_coordinates()
    assert cur["pelvis_tx"] == 0.1 and cur["pelvis_ty"] == 0.9 and cur["pelvis_tz"] == -0.2
    np.testing.assert_allclose(kin.body_origin("pelvis"), [0.1, 0.9, -0.2], atol=1e-12)
    R = kin.body_rotation("lumbar5")
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    e = kin.segment_euler_deg()
    assert e.shape == (len(SPINE_SEGMENTS), 3)
    np.testing.assert_allclose(e[0], np.rad2deg([cur["L5_S1_Flex_Ext"], cur["L5_S1_Lat_Bending"],
                                                  cur["L5_S1_axial_rotation"]]), atol=1e-9)
    allm = kin.marker_positions()
    pick = [kin.marker_names[5], kin.marker_names[2]]
    np.testing.assert_array_equal(kin.marker_positions(pick), allm[[5, 2]])
    kp = kin.keypoints()
    idx = [kin.marker_names.index(n) for n in spinetrack37().names]
    np.testing.assert_array_equal(kp, allm[idx])
    with pytest.raises(InputError, match="model has no coordinate 'nope'"):
        kin.set_coordinates({"nope": 1.0})


def test_coordinate_table_column():
    t = CoordinateTable(np.arange(3.0), ["a", "b"], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(t.column("b"), [1.0, 3.0, 5.0])
    with pytest.raises(InputError, match="no coordinate column 'c'"):
        t.column("c")
