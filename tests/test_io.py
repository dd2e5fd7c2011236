"""TRC / MOT against OpenSim's own readers, OpenPose JSON, and 2D session files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import opensim as osim
import pytest

from simspine.calibration import read_qca
from simspine.errors import InputError
from simspine.io.mot import read_mot, write_mot
from simspine.io.openpose import read_openpose_folder, read_openpose_frame, write_openpose_folder
from simspine.io.session import Session2D, load_pose2sim_session
from simspine.io.trc import read_trc, write_trc
from simspine.skeletons import spinetrack37
from simspine.trajectories import Trajectories

QCA = Path(__import__("Pose2Sim").__file__).parent / "Demo_SinglePerson" / "calibration" / "Calib.qca.txt"


def _traj(T=30, M=5, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(scale=0.5, size=(T, M, 3)) + [0, 1, 0]
    xyz[3, 1] = np.nan  # one missing marker in one frame
    xyz[7:10, 4] = np.nan  # a gap
    return Trajectories(np.arange(T) / 50.0, [f"M{i}" for i in range(M)], xyz, frame="opensim-ground (Y up)")


# ---- TRC ---------------------------------------------------------------------------------------
def test_trc_loads_in_opensim_with_same_values(tmp_path):
    tr = _traj()
    path = write_trc(tmp_path / "markers.trc", tr)
    table = osim.TimeSeriesTableVec3(str(path))
    assert list(table.getColumnLabels()) == tr.names
    assert table.getNumRows() == tr.n_frames
    np.testing.assert_allclose(np.array(table.getIndependentColumn()), tr.time, atol=1e-9)
    flat = table.flatten()  # keep each SWIG object alive while its view is used
    mat = flat.getMatrix()
    vals = np.array(mat.to_numpy()).reshape(tr.n_frames, -1, 3)
    np.testing.assert_array_equal(np.isnan(vals), np.isnan(tr.xyz))  # NaN = missing, as OpenSim expects
    np.testing.assert_allclose(vals, tr.xyz, atol=1e-9, equal_nan=True)
    assert table.getTableMetaDataAsString("Units") == "m"
    assert float(table.getTableMetaDataAsString("DataRate")) == pytest.approx(50)
    assert "frame=opensim-ground (Y up)" in table.getTableMetaDataAsString("header")
    # and through the adapter itself
    markers = osim.TRCFileAdapter().read(str(path))["markers"]
    assert markers.getNumRows() == tr.n_frames and list(markers.getColumnLabels()) == tr.names
    # and through MarkerData, the reader of OpenSim's Scale and IK tools
    md = osim.MarkerData(str(path))
    assert md.getNumFrames() == tr.n_frames and md.getUnits().getAbbreviation() == "m"
    got = np.array([[[md.getFrame(f).getMarker(m).get(i) for i in range(3)] for m in range(len(tr.names))]
                    for f in range(tr.n_frames)])
    np.testing.assert_allclose(got, tr.xyz, atol=1e-9, equal_nan=True)


def test_trc_round_trip_units_and_frame(tmp_path):
    tr = _traj()
    tr.frame = "Human3.6M world (Z up)"
    for units in ("m", "mm"):
        p = write_trc(tmp_path / f"x_{units}.trc", tr, units=units)
        back = read_trc(p)
        assert back.names == tr.names and back.frame == tr.frame and back.meta["Units"] == units
        np.testing.assert_allclose(back.xyz, tr.xyz, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(back.time, tr.time, atol=1e-12)
        np.testing.assert_array_equal(back.conf, np.isfinite(tr.xyz).all(-1).astype(float))


def test_trc_written_by_opensim_reads_back(tmp_path):
    tr = _traj()
    table = osim.TimeSeriesTableVec3(str(write_trc(tmp_path / "a.trc", tr)))
    osim.TRCFileAdapter().write(table, str(tmp_path / "b.trc"))
    back = read_trc(tmp_path / "b.trc")
    assert back.names == tr.names and back.frame == "opensim-ground (Y up)"
    np.testing.assert_allclose(back.xyz, tr.xyz, atol=1e-9, equal_nan=True)


def test_trc_reads_in_pose2sim(tmp_path):
    from Pose2Sim.common import read_trc as p2s_read_trc

    tr = _traj()
    data, _, time, markers, _ = p2s_read_trc(str(write_trc(tmp_path / "p.trc", tr)))
    assert markers == tr.names
    np.testing.assert_allclose(data.to_numpy().reshape(tr.n_frames, -1, 3), tr.xyz, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(time.to_numpy(), tr.time, atol=1e-9)


def test_trc_inconsistent_column_count(tmp_path):
    p = write_trc(tmp_path / "bad.trc", _traj())
    lines = p.read_text().splitlines()
    lines[8] = "\t".join(lines[8].split("\t")[:-2])  # frame 4 loses two values
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        read_trc(p)
    assert str(e.value) == f"{p}: line 9: 15 columns, expected 17 (Frame#, Time and X/Y/Z for 5 markers)"


def test_trc_other_bad_input(tmp_path):
    p = tmp_path / "x.trc"
    p.write_text("hello\n")
    with pytest.raises(InputError, match="not a TRC file"):
        read_trc(p)
    lines = write_trc(tmp_path / "g.trc", _traj()).read_text().splitlines()
    fields = lines[6].split("\t")
    fields[3] = "abc"
    p.write_text("\n".join(lines[:6] + ["\t".join(fields)] + lines[7:]) + "\n")
    with pytest.raises(InputError, match="line 7: 'abc' is not a number"):
        read_trc(p)
    with pytest.raises(InputError, match="cannot read"):
        read_trc(tmp_path / "missing.trc")


def test_trc_times_that_do_not_increase_are_refused(tmp_path):
    p = write_trc(tmp_path / "t.trc", _traj())
    lines = p.read_text().splitlines()
    f = lines[9].split("\t")  # frame 5 (line 10) gets the time of frame 3
    f[1] = "0.04"
    lines[9] = "\t".join(f)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        read_trc(p)
    assert str(e.value).startswith(f"{p}: line 10 (Frame# 5): time 0.04 s does not increase after 0.06 s on line 9")
    lines[9] = lines[8]  # a repeated row: equal times are refused too (OpenSim refuses them)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 10 \\(Frame# 4\\): time 0.06 s does not increase"):
        read_trc(p)


def test_trc_comma_and_space_separated(tmp_path):
    tr = _traj()
    text = write_trc(tmp_path / "t.trc", tr).read_text()
    c = tmp_path / "comma.trc"
    c.write_text(text.replace("\t", ","))
    back = read_trc(c)
    assert back.meta["delimiter"] == "comma" and back.names == tr.names and back.frame == tr.frame
    np.testing.assert_allclose(back.xyz, tr.xyz, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(back.time, tr.time)
    # spaces: readable while every value is written (NaN for missing)
    sp = tmp_path / "space.trc"
    sp.write_text(text.replace("\t", " "))
    back = read_trc(sp)
    assert back.meta["delimiter"] == "space" and back.names == tr.names
    np.testing.assert_allclose(back.xyz, tr.xyz, atol=1e-9, equal_nan=True)
    # an empty (missing) value cannot be told apart when spaces separate values: refused, saying so
    lines = text.splitlines()
    f = lines[6].split("\t")
    f[2:5] = ["", "", ""]
    lines[6] = "\t".join(f)
    sp.write_text("\n".join(lines).replace("\t", " ") + "\n")
    with pytest.raises(InputError) as e:
        read_trc(sp)
    assert str(e.value).startswith(f"{sp}: line 7: 14 columns, expected 17")
    assert "space-separated" in str(e.value) and "tab-separated (the TRC standard)" in str(e.value)
    # the same row tab-separated: an empty field is a missing marker
    tab = tmp_path / "tab.trc"
    tab.write_text("\n".join(lines) + "\n")
    assert np.isnan(read_trc(tab).xyz[1, 0]).all()


def test_trc_numframes_that_disagrees_warns_and_uses_the_rows(tmp_path):
    p = write_trc(tmp_path / "n.trc", _traj(T=30))
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:-4]) + "\n")  # the last 4 frames cut off (a truncated copy)
    with pytest.warns(UserWarning) as rec:
        tr = read_trc(p)
    assert tr.n_frames == 26
    msg = str(rec[0].message)
    assert msg == (f"{p}: header says NumFrames=30 but the file has 26 data rows (fewer rows than declared: the "
                   "file may be truncated); the 26 rows are used")
    assert tr.meta["warnings"] == [msg[len(f"{p}: "):]]
    # a consistent file warns about nothing
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "warnings" not in read_trc(write_trc(tmp_path / "ok.trc", _traj())).meta


# ---- MOT / STO ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["mot", "sto"])
def test_mot_loads_in_opensim_with_same_values(tmp_path, ext):
    rng = np.random.default_rng(3)
    time = np.arange(40) / 100.0
    names = ["pelvis_tilt", "pelvis_tx", "L5_S1_Flex_Ext", "knee_angle_r"]
    values = rng.normal(scale=20, size=(40, 4))
    values[5, 2] = np.nan
    p = write_mot(tmp_path / f"ik.{ext}", time, names, values, in_degrees=True, comment="from a test")
    table = osim.TimeSeriesTable(str(p))
    assert list(table.getColumnLabels()) == names
    np.testing.assert_allclose(np.array(table.getIndependentColumn()), time, atol=1e-12)
    mat = table.getMatrix()
    np.testing.assert_allclose(np.array(mat.to_numpy()), values, atol=1e-9, equal_nan=True)
    assert table.getTableMetaDataAsString("inDegrees") == "yes"
    assert table.getTableMetaDataAsString("frame") == "opensim-ground (Y up)"
    back = read_mot(p)
    assert back.names == names and back.in_degrees and back.meta["frame"] == "opensim-ground (Y up)"
    np.testing.assert_allclose(back.values, values, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(back.time, time, atol=1e-12)
    # OpenSim's own writer's output reads back the same
    osim.STOFileAdapter.write(table, str(tmp_path / f"os.{ext}"))
    again = read_mot(tmp_path / f"os.{ext}")
    assert again.names == names and again.in_degrees
    np.testing.assert_allclose(again.values, values, atol=1e-9, equal_nan=True)


def test_mot_radians_and_bad_input(tmp_path):
    p = write_mot(tmp_path / "r.mot", [0.0, 0.1], ["a"], [[0.5], [0.25]], in_degrees=False)
    assert read_mot(p).in_degrees is False
    assert osim.TimeSeriesTable(str(p)).getTableMetaDataAsString("inDegrees") == "no"
    p.write_text(p.read_text().replace("endheader", "end"))
    with pytest.raises(InputError, match="no 'endheader' line"):
        read_mot(p)
    q = write_mot(tmp_path / "q.mot", [0.0, 0.1], ["a", "b"], [[1, 2], [3, 4]])
    q.write_text(q.read_text().rstrip("\n").rsplit("\t", 1)[0] + "\n")
    with pytest.raises(InputError, match="2 columns, expected 3"):
        read_mot(q)


# ---- OpenPose JSON -----------------------------------------------------------------------------
def test_openpose_round_trip_and_missing(tmp_path):
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 1000, size=(6, 37, 2))
    conf = rng.uniform(0.1, 1, size=(6, 37))
    xy[2, 5] = np.nan
    conf[2, 5] = 0
    xy[4] = np.nan  # nobody detected
    conf[4] = 0
    files = write_openpose_folder(tmp_path / "cam01_json", xy, conf)
    assert files[0].name == "cam01_000000.json"
    data = json.loads(files[0].read_text())
    assert len(data["people"][0]["pose_keypoints_2d"]) == 37 * 3
    assert json.loads(files[4].read_text())["people"] == []
    xy2, conf2 = read_openpose_folder(tmp_path / "cam01_json")
    np.testing.assert_allclose(xy2, xy, equal_nan=True)
    np.testing.assert_allclose(conf2, conf)


def test_openpose_picks_most_confident_person(tmp_path):
    a = [10, 20, 0.3] * 3
    b = [30, 40, 0.9, 31, 41, 0.8, 0, 0, 0]  # mean confidence 0.57 > 0.3
    p = tmp_path / "f_000001.json"
    p.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": a}, {"pose_keypoints_2d": b}]}))
    xy, conf = read_openpose_frame(p)
    np.testing.assert_allclose(xy[:2], [[30, 40], [31, 41]])
    assert np.isnan(xy[2]).all() and conf.tolist() == [0.9, 0.8, 0.0]


def test_openpose_wrong_length_names_the_file(tmp_path):
    folder = tmp_path / "cam02_json"
    write_openpose_folder(folder, np.ones((3, 26, 2)), np.ones((3, 26)))
    bad = folder / "cam02_000001.json"
    d = json.loads(bad.read_text())
    d["people"][0]["pose_keypoints_2d"] = d["people"][0]["pose_keypoints_2d"][:-3]
    bad.write_text(json.dumps(d))
    with pytest.raises(InputError) as e:
        read_openpose_folder(folder)
    assert str(e.value) == (f"{bad}: people[0].pose_keypoints_2d has 75 values, expected 3 x 26 = 78 "
                            "([x, y, confidence] per keypoint)")
    bad.write_text('{"people": [')
    with pytest.raises(InputError, match=f"^{bad}: not valid JSON"):
        read_openpose_folder(folder)
    bad.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2]}]}))
    with pytest.raises(InputError, match="has 2 values"):
        read_openpose_frame(bad)


# ---- sessions ----------------------------------------------------------------------------------
def _make_project(root: Path, n_frames=(8, 8, 8, 8), extra_dir=None):
    """A Pose2Sim-style project: Qualisys calibration + OpenPose JSON from projected 3D points."""
    (root / "calibration").mkdir(parents=True)
    shutil.copy(QCA, root / "calibration" / "Calib.qca.txt")
    cams = read_qca(QCA)
    rng = np.random.default_rng(5)
    T = max(n_frames)
    X = rng.uniform([-0.3, -0.3, 0.2], [0.3, 0.3, 1.7], size=(T, 37, 3))
    truth = []
    for cam, n in zip(cams, n_frames, strict=True):
        uv = cam.project(X)
        conf = rng.uniform(0.5, 1.0, size=(T, 37))
        write_openpose_folder(root / "pose" / f"{cam.name}_json", uv[:n], conf[:n])
        truth.append((uv, conf))
    if extra_dir:
        write_openpose_folder(root / "pose" / extra_dir, np.ones((T, 37, 2)), np.ones((T, 37)))
    (root / "Config.toml").write_text("[project]\nframe_rate = 60\n[pose]\npose_model = 'Body_with_feet'\n")
    return cams, truth


def test_pose2sim_session_load_save_round_trip(tmp_path):
    cams, truth = _make_project(tmp_path / "proj")
    s = load_pose2sim_session(tmp_path / "proj")
    assert s.camera_names == ["cam01", "cam02", "cam03", "cam04"]
    assert s.keypoints.shape == (4, 8, 37, 2) and s.conf.shape == (4, 8, 37)
    assert s.skeleton == "SpineTrack-37" and s.keypoint_names == list(spinetrack37().names)
    assert s.fps == 60 and s.meta["fps_source"] == "Config.toml"
    np.testing.assert_allclose(s.timestamps, np.arange(8) / 60)
    for c in range(4):
        np.testing.assert_allclose(s.keypoints[c], truth[c][0], atol=1e-9)
        np.testing.assert_allclose(s.conf[c], truth[c][1], atol=1e-12)
        assert np.abs(s.cameras[c].P - cams[c].P).max() == 0
    path = s.save(tmp_path / "session.npz")
    back = Session2D.load(path)
    assert back.camera_names == s.camera_names and back.keypoint_names == s.keypoint_names
    assert back.fps == s.fps and back.skeleton == s.skeleton and back.world_frame == s.world_frame
    np.testing.assert_array_equal(back.keypoints, s.keypoints)
    np.testing.assert_array_equal(back.conf, s.conf)
    for a, b in zip(back.cameras, s.cameras, strict=True):
        assert a.dist_model == b.dist_model and a.size == b.size
        np.testing.assert_array_equal(a.P, b.P)
        np.testing.assert_array_equal(a.dist, b.dist)
    with np.load(path) as z:
        meta = json.loads(str(z["meta_json"]))
    assert meta["units"]["keypoints"] == "px" and "Z up" in meta["world_frame"]


def test_session_camera_with_fewer_files_has_missing_frames(tmp_path):
    # cam03 lacks its last frame: the frame is missing there (not a refusal, not a shift)
    _, truth = _make_project(tmp_path / "p", n_frames=(8, 8, 7, 8))
    s = load_pose2sim_session(tmp_path / "p")
    assert s.n_frames == 8 and s.meta["frames_missing"] == {"cam01": 0, "cam02": 0, "cam03": 1, "cam04": 0}
    assert np.isnan(s.keypoints[2, 7]).all() and (s.conf[2, 7] == 0).all()
    np.testing.assert_allclose(s.keypoints[2, :7], truth[2][0][:7], atol=1e-9)
    np.testing.assert_allclose(s.timestamps, np.arange(8) / 60)


def test_session_skeleton_that_does_not_fit_names_the_source(tmp_path):
    _make_project(tmp_path / "p")
    with pytest.raises(InputError, match=f"^{tmp_path / 'p'}: skeleton Human3.6M-17 has 17 keypoints but the "
                                         "files hold 37"):
        load_pose2sim_session(tmp_path / "p", skeleton="h36m17")


def test_session_keypoint_folder_without_camera(tmp_path):
    _make_project(tmp_path / "p", extra_dir="cam05_json")
    with pytest.raises(InputError) as e:
        load_pose2sim_session(tmp_path / "p")
    assert str(e.value).startswith(f"{tmp_path / 'p' / 'pose' / 'cam05_json'}: keypoint folder has no camera "
                                   "in the calibration")
    assert "cameras: cam01, cam02, cam03, cam04" in str(e.value)


def test_session_needs_two_cameras(tmp_path):
    _make_project(tmp_path / "p")
    for name in ("cam02_json", "cam03_json", "cam04_json"):
        shutil.rmtree(tmp_path / "p" / "pose" / name)
    with pytest.raises(InputError, match="1 camera\\(s\\) with 2D keypoints; triangulation needs at least 2"):
        load_pose2sim_session(tmp_path / "p")


def test_session_file_errors(tmp_path):
    p = tmp_path / "s.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a simspine session file"):
        Session2D.load(p)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="missing keypoints"):
        Session2D.load(tmp_path / "other.npz")


def test_keypoint_folder_matching_and_names():
    from simspine.io.session import keypoint_names_for, match_camera

    cams = read_qca(QCA)
    for c, n in zip(cams, ["int_cam01_img", "int_cam02_img", "int_cam03_img", "int_cam04_img"], strict=True):
        c.name = n  # names as Pose2Sim's own calibration writes them
    assert match_camera("cam03_json", cams).name == "int_cam03_img"
    assert match_camera("camX_json", cams) is None
    name, names = keypoint_names_for("Body_with_feet", 26)
    assert name == "HALPE_26" and names[0] == "Nose" and names[19] == "Hip" and len(names) == 26
    assert keypoint_names_for(None, 37)[0] == "SpineTrack-37"
    with pytest.raises(InputError, match="has 37 keypoints but the files hold 17"):
        keypoint_names_for("spinetrack37", 17)


def test_trajectories_npz_round_trip_and_corrupt_file(tmp_path):
    from simspine.io.npz import read_trajectories_npz, write_trajectories_npz
    from simspine.trajectories import Trajectories

    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(4, 2, 3))
    xyz[1, 0] = np.nan
    src = np.array([[1, 2]] * 4, dtype=np.int8)
    traj = Trajectories(np.arange(4) / 50, ["a", "b"], xyz, np.full((4, 2), 0.7), "some frame (Y up)",
                        {"note": "x", "sample_source": src})
    p = write_trajectories_npz(tmp_path / "t.npz", traj, arrays={"extra": np.ones(3)})
    back = read_trajectories_npz(p)
    np.testing.assert_array_equal(back.xyz, xyz)
    np.testing.assert_array_equal(back.conf, traj.conf)
    assert back.names == ["a", "b"] and back.frame == "some frame (Y up)"
    assert back.meta["note"] == "x" and (back.meta["sample_source"] == src).all() and "extra" not in back.meta
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="t.npz: not a valid trajectory file"):
        read_trajectories_npz(p)
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(InputError, match="other.npz: not a valid trajectory file"):
        read_trajectories_npz(tmp_path / "other.npz")


def test_session_npz_takes_given_calibration_and_fps(tmp_path, capsys):
    """A session .npz carries cameras and a frame rate; --calibration and --fps replace them (they
    were silently ignored): the .npz below holds a camera moved by 30 cm, the TOML the true rig."""
    import dataclasses

    from simspine.calibration import write_calibration_toml
    from simspine.cli import main
    from simspine.io.session import load_session

    cams, _ = _make_project(tmp_path / "p")
    s = load_pose2sim_session(tmp_path / "p")
    moved = [dataclasses.replace(c) for c in s.cameras]
    moved[1] = dataclasses.replace(moved[1], t=moved[1].t + np.array([0.3, 0.0, 0.0]))
    bad = dataclasses.replace(s, cameras=moved).save(tmp_path / "bad.npz")
    toml = write_calibration_toml(tmp_path / "true.toml", cams)
    assert np.abs(load_session(bad).cameras[1].P - cams[1].P).max() > 1.0
    given = load_session(bad, calibration=toml, fps=30)
    assert given.camera_names == s.camera_names and given.meta["calibration"] == str(toml)
    for a, b in zip(given.cameras, cams, strict=True):
        np.testing.assert_allclose(a.P, b.P, rtol=1e-9, atol=1e-9)
    assert given.fps == 30 and given.timestamps[-1] == pytest.approx(7 / 30)
    errs = {}
    for label, extra in (("npz", []), ("toml", ["--calibration", str(toml)])):
        out = tmp_path / label
        assert main(["triangulate", str(bad), "--out", str(out), *extra]) == 0
        rep = json.loads((out / "triangulated_report.json").read_text())
        errs[label] = {c["name"]: c["excluded_share"] for c in rep["cameras"]}["cam02"]
    capsys.readouterr()
    # The moved camera disagrees with the others and is left out; with the true rig it is used.
    assert errs["toml"] < 0.01 and errs["npz"] > 0.9, errs
    other = write_calibration_toml(tmp_path / "three.toml", cams[:3])
    with pytest.raises(InputError, match="no camera cam04 of session bad.npz in this calibration"):
        load_session(bad, calibration=other)
