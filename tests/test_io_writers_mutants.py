"""io/npz.py and io/openpose.py: behaviours the first tests left open (mutation testing, issue 16).

Written files are read back with independent readers: ``.npz`` with ``zipfile`` and
``numpy.lib.format`` (not ``np.load``), OpenPose JSON with ``json`` and with Pose2Sim's own
per-frame reader (``triangulation.extract_files_frame_f``); numbers, units and the metadata are
compared. The readers' refusals are checked by their full messages, and the frame-number axis
(missing frames, chosen frames, several people) by value.
"""

import io
import json
import zipfile

import numpy as np
import pytest

from simspine.errors import InputError
from simspine.io import npz as N
from simspine.io import openpose as O
from simspine.trajectories import Trajectories


def _zip_arrays(path):
    """Every array of an .npz read with zipfile + numpy.lib.format, and the zip's compression types."""
    with zipfile.ZipFile(path) as z:
        out = {i.filename[:-4]: np.lib.format.read_array(io.BytesIO(z.read(i.filename)), allow_pickle=False)
               for i in z.infolist()}
        kinds = {i.compress_type for i in z.infolist()}
    return out, kinds


# ---- npz -----------------------------------------------------------------------------------------
def test_save_npz_is_a_compressed_zip_of_npy_arrays(tmp_path):
    p = N.save_npz(tmp_path / "sub" / "a.npz", x=np.arange(6.0).reshape(2, 3), n=np.array(["a", "bc"]))
    assert p == tmp_path / "sub" / "a.npz" and sorted(x.name for x in p.parent.iterdir()) == ["a.npz"]
    arrays, kinds = _zip_arrays(p)
    assert kinds == {zipfile.ZIP_DEFLATED}
    assert arrays["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and arrays["n"].tolist() == ["a", "bc"]
    assert N.read_npz(p).keys() == {"x", "n"}


def test_trajectories_npz_contents_by_an_independent_reader(tmp_path):
    xyz = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3) / 100  # metres
    xyz[1, 2] = np.nan
    src = np.array([[1, 2, 3], [3, 2, 1]], dtype=np.int8)
    traj = Trajectories([0.0, 0.02], ["Hip", "Neck", "Nose"], xyz, [[0.9, 0.8, 0.7], [0.6, 0.5, 0.0]],
                        "lab (Z up)", {"note": "n", "count": 3, "b_src": src, "a_src": src * 2})
    p = N.write_trajectories_npz(tmp_path / "t.npz", traj, arrays={"extra": np.ones(2)}, meta={"units_extra": "px"})
    arrays, _ = _zip_arrays(p)
    assert sorted(arrays) == ["a_src", "b_src", "conf", "extra", "meta_json", "names", "time", "xyz"]
    np.testing.assert_array_equal(arrays["xyz"], xyz)
    assert arrays["time"].tolist() == [0.0, 0.02] and arrays["names"].tolist() == ["Hip", "Neck", "Nose"]
    assert arrays["conf"].tolist() == [[0.9, 0.8, 0.7], [0.6, 0.5, 0.0]]
    assert arrays["b_src"].dtype == np.int8 and (arrays["a_src"] == src * 2).all()
    info = json.loads(str(arrays["meta_json"]))
    assert info == {"frame": "lab (Z up)", "units": {"xyz": "m", "time": "s"}, "names": ["Hip", "Neck", "Nose"],
                    "meta": {"note": "n", "count": 3}, "meta_arrays": ["a_src", "b_src"], "units_extra": "px"}
    back = N.read_trajectories_npz(p)
    assert back.frame == "lab (Z up)" and back.names == ["Hip", "Neck", "Nose"]
    assert back.meta.keys() == {"note", "count", "a_src", "b_src"} and back.meta["count"] == 3
    assert (back.meta["b_src"] == src).all() and back.meta["b_src"].dtype == np.int8
    np.testing.assert_array_equal(back.xyz, xyz)
    # a non-JSON value in meta is written as its str()
    t2 = Trajectories([0.0], ["a"], np.zeros((1, 1, 3)), meta={"path": tmp_path})
    info2 = json.loads(str(_zip_arrays(N.write_trajectories_npz(tmp_path / "u.npz", t2))[0]["meta_json"]))
    assert info2["meta"] == {"path": str(tmp_path)} and info2["meta_arrays"] == []


def test_npz_read_errors(tmp_path):
    def msg(path, what=None):
        with pytest.raises(InputError) as e:
            N.read_npz(path) if what is None else N.read_trajectories_npz(path, what)
        return str(e.value)

    assert msg(tmp_path / "no.npz") == f"{tmp_path / 'no.npz'}: file not found"
    assert msg(tmp_path / "no.npz", "stage output") == f"{tmp_path / 'no.npz'}: stage output not found"
    (tmp_path / "d.npz").mkdir()
    assert msg(tmp_path / "d.npz") == f"{tmp_path / 'd.npz'}: cannot read file: Is a directory"
    (tmp_path / "t.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert msg(tmp_path / "t.npz").startswith(f"{tmp_path / 't.npz'}: not a valid file (BadZipFile: ")
    np.savez(tmp_path / "o.npz", a=np.array([{"x": 1}], dtype=object))
    assert msg(tmp_path / "o.npz").startswith(f"{tmp_path / 'o.npz'}: not a valid file (ValueError: ")
    # trajectory files: a missing array, a bad meta_json, inconsistent arrays
    np.savez(tmp_path / "k.npz", time=np.zeros(1))
    assert msg(tmp_path / "k.npz", "trajectory file") == \
        f"{tmp_path / 'k.npz'}: not a valid trajectory file (KeyError: 'meta_json')"
    good = Trajectories([0.0, 1.0], ["a"], np.zeros((2, 1, 3)))
    arrays = _zip_arrays(N.write_trajectories_npz(tmp_path / "g.npz", good))[0]
    np.savez(tmp_path / "j.npz", **{**arrays, "meta_json": np.array("{not json")})
    assert msg(tmp_path / "j.npz", "trajectory file").startswith(
        f"{tmp_path / 'j.npz'}: not a valid trajectory file (JSONDecodeError: ")
    np.savez(tmp_path / "s.npz", **{**arrays, "time": np.zeros(3)})
    assert msg(tmp_path / "s.npz", "marker file") == \
        f"{tmp_path / 's.npz'}: not a valid marker file (2 frames of positions but 3 timestamps)"
    np.savez(tmp_path / "f.npz", **{**arrays, "meta_json": np.array(json.dumps({"meta": {}}))})
    assert msg(tmp_path / "f.npz", "trajectory file") == \
        f"{tmp_path / 'f.npz'}: not a valid trajectory file (KeyError: 'frame')"
    # meta and meta_arrays are optional in meta_json
    np.savez(tmp_path / "m.npz", **{**arrays, "meta_json": np.array(json.dumps({"frame": "w"}))})
    back = N.read_trajectories_npz(tmp_path / "m.npz")
    assert back.frame == "w" and back.meta == {}


# ---- OpenPose writer, read back by json and by Pose2Sim ------------------------------------------
def test_openpose_writer_by_json_and_pose2sim(tmp_path):
    from Pose2Sim.triangulation import extract_files_frame_f

    xy = np.array([[[10.5, 20.25], [np.nan, 5.0], [30.0, 40.0]],
                   [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                   [[np.nan, np.nan], [7.0, 8.0], [9.0, 10.0]]])
    conf = np.array([[0.9, 0.8, 0.0], [0.5, np.nan, -0.1], [0.0, 0.0, 0.0]])
    files = O.write_openpose_folder(tmp_path / "cam03_json", xy, conf, start=41)
    assert [f.name for f in files] == ["cam03_000041.json", "cam03_000042.json", "cam03_000043.json"]
    d0 = json.loads(files[0].read_text())
    assert d0["version"] == 1.3 and len(d0["people"]) == 1
    person = d0["people"][0]
    assert person["person_id"] == [-1]
    # a NaN coordinate or a confidence of 0 is written 0, 0, 0 (OpenPose's 'not found')
    assert person["pose_keypoints_2d"] == [10.5, 20.25, 0.9, 0, 0, 0, 0, 0, 0]
    assert all(person[k] == [] for k in ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                                         "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                                         "hand_right_keypoints_3d"))
    # NaN and negative confidences are not a detection either
    assert json.loads(files[1].read_text())["people"][0]["pose_keypoints_2d"] == [1, 2, 0.5, 0, 0, 0, 0, 0, 0]
    assert json.loads(files[2].read_text()) == {"version": 1.3, "people": []}  # nobody detected
    x, y, c = extract_files_frame_f([str(files[0]), str(files[1])], [0, 1, 2], 1)
    assert x.tolist() == [[[10.5, 0, 0], [1, 0, 0]]] and y.tolist() == [[[20.25, 0, 0], [2, 0, 0]]]
    assert c.tolist() == [[[0.9, 0, 0], [0.5, 0, 0]]]
    # default prefix: the folder name without _json; a folder not ending in _json keeps its name
    assert O.write_openpose_folder(tmp_path / "camA", xy[:1], conf[:1])[0].name == "camA_000000.json"
    assert O.write_openpose_folder(tmp_path / "x_json", xy[:1], conf[:1], prefix="p")[0].name == "p_000000.json"


def test_openpose_writer_refuses_bad_shapes(tmp_path):
    for xy, conf in ((np.zeros((2, 3)), np.zeros((2, 3))), (np.zeros((2, 3, 3)), np.zeros((2, 3))),
                     (np.zeros((2, 3, 2)), np.zeros((2, 4)))):
        with pytest.raises(InputError) as e:
            O.write_openpose_folder(tmp_path / "c_json", xy, conf)
        assert str(e.value) == (f"{tmp_path / 'c_json'}: keypoints must be (T, K, 2) with confidences (T, K); "
                                f"got {xy.shape} and {conf.shape}")
    assert not (tmp_path / "c_json").exists()


# ---- OpenPose readers ----------------------------------------------------------------------------
def _write(folder, name, people):
    folder.mkdir(exist_ok=True)
    p = folder / name
    p.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": kp} for kp in people]}))
    return p


def test_frame_numbers_and_file_order(tmp_path):
    assert O.last_number("cam01_000012.json") == 12 and O.last_number("a7b") == 7 and O.last_number("abc") is None
    paths = [tmp_path / n for n in ("b.json", "x_10.json", "x_9.json", "a.json", "y_9.json")]
    assert [p.name for p in O.by_last_number(paths)] == ["x_9.json", "y_9.json", "x_10.json", "a.json", "b.json"]
    # frame 0 sorts before frame 1 whatever the names
    assert [p.name for p in O.by_last_number([tmp_path / "b_0.json", tmp_path / "a_1.json"])] == ["b_0.json", "a_1.json"]
    f = tmp_path / "cam_json"
    for n in ("c_2.json", "c_10.json", "c_1.JSON"):
        _write(f, n, [])
    (f / "c_3.txt").write_text("x")
    (f / "c_4.json").mkdir()
    assert [p.name for p in O.list_frame_files(f)] == ["c_1.JSON", "c_2.json", "c_10.json"]
    numbers, files = O.numbered_frame_files(f)
    assert numbers.tolist() == [1, 2, 10] and numbers.dtype == np.int64 and len(files) == 3

    def msg(folder):
        with pytest.raises(InputError) as e:
            O.numbered_frame_files(folder)
        return str(e.value)

    assert msg(tmp_path / "none") == f"{tmp_path / 'none'}: keypoint folder not found"
    (tmp_path / "empty").mkdir()
    assert msg(tmp_path / "empty") == f"{tmp_path / 'empty'}: no .json keypoint files in the folder"
    _write(f, "last.json", [])
    _write(f, "first.json", [])
    assert msg(f) == (f"{f}: 2 keypoint file(s) without a frame number in the name (e.g. 'first.json'); name them "
                      "<camera>_<frame>.json, the frame being the video frame's number")
    (f / "last.json").unlink()
    (f / "first.json").unlink()
    _write(f, "d_010.json", [])
    assert msg(f) == f"{f}: two keypoint files for frame 10: c_10.json and d_010.json"


def test_read_people_and_frame(tmp_path):
    p = _write(tmp_path, "f_1.json", [[10, 20, 0.3, 0, 0, 0], [30, 40, 0.9, 31, 41, 0.8]])
    xy, conf = O.read_openpose_people(p)
    assert xy.shape == (2, 2, 2) and np.isnan(xy[0, 1]).all() and xy[1].tolist() == [[30, 40], [31, 41]]
    assert conf.tolist() == [[0.3, 0.0], [0.9, 0.8]]
    # a non-finite coordinate with a confidence, or a NaN confidence: missing
    q = tmp_path / "g_2.json"
    q.write_text('{"people": [{"pose_keypoints_2d": [NaN, 5, 0.9, 1, 2, NaN, 3, 4, 0.5]}]}')
    xy, conf = O.read_openpose_people(q)
    assert np.isnan(xy[0, :2]).all() and xy[0, 2].tolist() == [3, 4] and conf[0].tolist() == [0, 0, 0.5]
    xy, conf = O.read_openpose_frame(q)
    assert xy.shape == (3, 2) and conf.tolist() == [0, 0, 0.5]
    # nobody: (None, None) unless K is known
    e = _write(tmp_path, "e_3.json", [])
    assert O.read_openpose_people(e) == (None, None) and O.read_openpose_frame(e) == (None, None)
    xy, conf = O.read_openpose_people(e, 4)
    assert xy.shape == (0, 4, 2) and conf.shape == (0, 4)
    xy, conf = O.read_openpose_frame(e, 4)
    assert xy.shape == (4, 2) and np.isnan(xy).all() and conf.tolist() == [0, 0, 0, 0]
    # the first of equally confident people
    t = _write(tmp_path, "t_4.json", [[1, 1, 0.5], [2, 2, 0.5]])
    assert O.read_openpose_frame(t)[0].tolist() == [[1, 1]]
    assert O.keypoint_count([e, p]) == 2 and O.keypoint_count([e]) is None


def test_read_people_messages(tmp_path):
    p = tmp_path / "f_1.json"

    def msg(text, k=None):
        p.write_text(text)
        with pytest.raises(InputError) as e:
            O.read_openpose_people(p, k)
        return str(e.value)

    assert msg('{"people": {}}') == f"{p}: no 'people' list: not an OpenPose keypoint file"
    assert msg("[1, 2]") == f"{p}: no 'people' list: not an OpenPose keypoint file"
    assert msg('{"people": [{"face": []}]}') == f"{p}: people[0] has no 'pose_keypoints_2d'"
    assert msg('{"people": [{"pose_keypoints_2d": [1, 2, 3]}, 5]}') == f"{p}: people[1] has no 'pose_keypoints_2d'"
    assert msg('{"people": [{"pose_keypoints_2d": [1, "a", 3]}]}') == \
        f"{p}: people[0].pose_keypoints_2d holds non-numeric values"
    assert msg('{"people": [{"pose_keypoints_2d": []}]}') == (
        f"{p}: people[0].pose_keypoints_2d has 0 values, expected a non-zero multiple of 3 "
        "([x, y, confidence] per keypoint)")
    assert msg('{"people": [{"pose_keypoints_2d": [[1, 2, 3]]}]}') == (
        f"{p}: people[0].pose_keypoints_2d has 3 values, expected a non-zero multiple of 3 "
        "([x, y, confidence] per keypoint)")
    assert msg('{"people": [{"pose_keypoints_2d": [1, 2, 3]}, {"pose_keypoints_2d": [1, 2, 3, 4, 5, 6]}]}') == (
        f"{p}: people[1].pose_keypoints_2d has 6 values, expected 3 x 1 = 3 ([x, y, confidence] per keypoint)")
    assert msg('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', k=2) == (
        f"{p}: people[0].pose_keypoints_2d has 3 values, expected 3 x 2 = 6 ([x, y, confidence] per keypoint)")
    assert msg('{"people": [').startswith(f"{p}: not valid JSON (")
    p.write_bytes(b'{"people": ["\xff"]}')
    with pytest.raises(InputError, match="not valid JSON"):
        O.read_openpose_people(p)
    with pytest.raises(InputError) as e:
        O.read_openpose_people(tmp_path / "none.json")
    assert str(e.value) == f"{tmp_path / 'none.json'}: cannot read keypoint file: No such file or directory"


def test_people_folder_on_the_frame_number_axis(tmp_path):
    f = tmp_path / "cam_json"
    _write(f, "c_5.json", [[1, 1, 0.9, 2, 2, 0.8]])
    _write(f, "c_7.json", [[3, 3, 0.2, 4, 4, 0.2], [5, 5, 0.9, 6, 6, 0.9], [7, 7, 0.1, 0, 0, 0]])
    _write(f, "c_8.json", [])
    xy, conf, count = O.read_openpose_people_folder(f)
    assert xy.shape == (4, 3, 2, 2) and conf.shape == (4, 3, 2) and count.tolist() == [1, 0, 3, 0]
    assert count.dtype == np.int64
    assert xy[0, 0].tolist() == [[1, 1], [2, 2]] and np.isnan(xy[0, 1:]).all() and np.isnan(xy[1]).all()
    assert xy[2, 2, 0].tolist() == [7, 7] and np.isnan(xy[2, 2, 1]).all() and conf[2, 2].tolist() == [0.1, 0]
    # the single-person reader takes the most confident person per frame
    sxy, sconf = O.read_openpose_folder(f)
    assert sxy.shape == (4, 2, 2) and sxy[2].tolist() == [[5, 5], [6, 6]] and sconf[2].tolist() == [0.9, 0.9]
    assert np.isnan(sxy[1]).all() and sconf[1].tolist() == [0, 0]
    # chosen frames: before, inside and after the files; rows follow ``frames``
    xy, conf, count = O.read_openpose_people_folder(f, frames=[8, 4, 5])
    assert count.tolist() == [0, 0, 1] and xy.shape == (3, 1, 2, 2) and xy[2, 0, 1].tolist() == [2, 2]
    # nobody in the first file while K is not yet known: that frame is empty, the next one is read
    h = tmp_path / "h_json"
    _write(h, "h_1.json", [])
    _write(h, "h_2.json", [[1, 1, 0.9]])
    xy, conf, count = O.read_openpose_people_folder(h)
    assert count.tolist() == [0, 1] and np.isnan(xy[0]).all() and xy[1, 0, 0].tolist() == [1, 1]
    # a file after one outside the chosen frames is still read
    xy, conf, count = O.read_openpose_people_folder(f, frames=[7])
    assert count.tolist() == [3] and xy[0, 1, 0].tolist() == [5, 5]
    # a frame holding nobody everywhere: one padding person
    g = tmp_path / "g_json"
    _write(g, "g_1.json", [])
    xy, conf, count = O.read_openpose_people_folder(g, n_keypoints=3)
    assert xy.shape == (1, 1, 3, 2) and count.tolist() == [0]
    # the single-person reader passes the keypoint count on: a known K for a folder of nobody, and
    # a file that does not hold K keypoints is refused
    sxy, sconf = O.read_openpose_folder(g, n_keypoints=3)
    assert sxy.shape == (1, 3, 2) and np.isnan(sxy).all() and sconf.tolist() == [[0, 0, 0]]
    with pytest.raises(InputError, match="c_5.json: people.0..pose_keypoints_2d has 6 values, expected 3 x 3 = 9"):
        O.read_openpose_folder(f, n_keypoints=3, frames=[5])
    with pytest.raises(InputError) as e:
        O.read_openpose_people_folder(g)
    assert str(e.value) == f"{g}: no person in any frame, so the keypoint count is unknown (pass n_keypoints)"
    # a file outside the chosen frames is not read (a broken one there is no error)
    (f / "c_9.json").write_text("{broken")
    assert O.read_openpose_folder(f, frames=[5, 6])[0].shape == (2, 2, 2)
    with pytest.raises(InputError, match="c_9.json: not valid JSON"):
        O.read_openpose_folder(f)
