"""calibration.py: behaviours the first tests left open, found by mutation testing (issue 16).

The TOML writer is checked by reading its file with ``tomllib`` (not simspine's reader) and
comparing every number and its unit (pixels, Rodrigues radians via OpenCV, metres); the readers
on hand-written files: each refusal's full message, the tables that are not cameras, the Qualisys
conversion written out by hand (subpixels / 64, binning, fov origin, turn by pi about x, mm -> m),
the camera filter and natural order, and the dispatch by extension.
"""

import json
import tomllib

import cv2
import numpy as np
import pytest

from simspine import calibration as C
from simspine.cameras import Camera
from simspine.errors import InputError

K = [[1400.5, 0.0, 960.25], [0.0, 1401.75, 540.5], [0.0, 0.0, 1.0]]


def _rot(v):
    return cv2.Rodrigues(np.asarray(v, float))[0]


# ---- TOML writer, read back with tomllib -------------------------------------------------------
def test_toml_writer_values_and_units_by_tomllib(tmp_path):
    a = Camera("cam01", (1920, 1080), K, [-0.1, 0.05, 0.001, -0.002, 0.0], _rot([0.1, -0.2, 0.3]), [0.5, -1.25, 4.0])
    b = Camera("side view.2", (640, 480), K, [-0.1, 0.05, 0.001, -0.002, 0.01], _rot([2.9, -0.4, 0.2]), [1, 2, 3])
    path = C.write_calibration_toml(tmp_path / "c.toml", [a, b], world_frame='lab "A" (Z up)')
    assert path == tmp_path / "c.toml"
    text = path.read_text()
    assert text.startswith("# Pose2Sim calibration written by simspine: X_cam = R X_world + t; rotation is a "
                           "Rodrigues\n# vector (radians), translation in metres, matrix in pixels, OpenCV "
                           "distortions k1 k2 p1 p2 [k3].\n\n[cam01]\n")
    assert '\n["side view.2"]\nname = "side view.2"\n' in text
    # bare keys where TOML allows them (letters of either case, digits, _ and -), quoted otherwise
    t2 = C.write_calibration_toml(tmp_path / "k.toml", [Camera("Cam_B-2", (2, 2), K)]).read_text()
    assert "\n[Cam_B-2]\nname = \"Cam_B-2\"\n" in t2
    d = tomllib.loads(text)
    assert list(d) == ["cam01", "side view.2", "metadata"]
    assert d["metadata"] == {"adjusted": False, "error": 0.0, "world_frame": 'lab "A" (Z up)'}
    for cam, sec in zip((a, b), (d["cam01"], d["side view.2"]), strict=True):
        assert sec["name"] == cam.name and sec["fisheye"] is False
        assert sec["size"] == [float(cam.size[0]), float(cam.size[1])]
        assert sec["matrix"] == cam.K.tolist()
        assert np.allclose(cv2.Rodrigues(np.array(sec["rotation"]))[0], cam.R, atol=1e-12)
        assert sec["translation"] == cam.t.tolist()  # metres, exactly
    # k3 = 0 is left out (Pose2Sim's 4-coefficient form); a non-zero k3 is written fifth
    assert d["cam01"]["distortions"] == [-0.1, 0.05, 0.001, -0.002]
    assert d["side view.2"]["distortions"] == [-0.1, 0.05, 0.001, -0.002, 0.01]
    # the exact line format (Pose2Sim writes the same layout)
    assert "size = [ 1920.0, 1080.0]\n" in text
    assert "translation = [ 0.5, -1.25, 4.0]\n" in text
    assert "matrix = [ [ 1400.5, 0.0, 960.25], [ 0.0, 1401.75, 540.5], [ 0.0, 0.0, 1.0]]\n" in text
    assert text.endswith("[metadata]\nadjusted = false\nerror = 0.0\nworld_frame = \"lab \\\"A\\\" (Z up)\"\n")
    # values round-trip bit for bit through repr
    c = Camera("x", (3, 3), [[1 / 3, 0, 0.1], [0, 2 / 3, 0.2], [0, 0, 1]], t=[0.1 + 0.2, 1e-17, -7.0])
    back = tomllib.loads(C.write_calibration_toml(tmp_path / "x.toml", [c]).read_text())
    assert back["x"]["matrix"][0][0] == 1 / 3 and back["x"]["translation"] == [0.1 + 0.2, 1e-17, -7.0]
    assert "world_frame" not in back["metadata"]


def test_toml_writer_converts_h36m_cameras(tmp_path):
    radial = Camera("r", (1000, 1000), K, [-0.2, 0.05, 0.01, 0.0, 0.0], dist_model="h36m")
    tang = Camera("t", (1000, 1000), K, [-0.2, 0.05, 0.01, 0.002, -0.001], dist_model="h36m")
    with pytest.raises(InputError) as e:
        C.write_calibration_toml(tmp_path / "h.toml", [radial, tang])
    assert str(e.value) == (f"{tmp_path / 'h.toml'}: no exact conversion from h36m to opencv distortion with "
                            "non-zero tangential coefficients; pass exact=False for a least-squares fit")
    assert not (tmp_path / "h.toml").exists()
    text = C.write_calibration_toml(tmp_path / "h.toml", [radial, tang], fit_distortion=True).read_text()
    d = tomllib.loads(text)
    assert d["r"]["distortions"] == [-0.2, 0.05, 0.0, 0.0, 0.01]  # exact: k3 moves to the fifth place
    fitted = tang.converted("opencv", exact=False)
    assert d["t"]["distortions"] == pytest.approx(fitted.dist.tolist(), rel=1e-12)
    assert ("[r]\n# distortion converted from 'r''s Human3.6M model; largest error 0 px\n" in text)
    assert (f"[t]\n# distortion converted from 't''s Human3.6M model; largest error "
            f"{fitted.conversion_error_px:.3g} px\nname = \"t\"\n") in text
    assert fitted.conversion_error_px > 0


def test_duplicate_names_refused_on_write_and_read(tmp_path):
    cams = [Camera(n, (2, 2), K) for n in ("b", "a", "b", "a", "c")]
    with pytest.raises(InputError) as e:
        C.write_calibration_toml(tmp_path / "d.toml", cams)
    assert str(e.value) == f"{tmp_path / 'd.toml'}: duplicate camera names: a, b"
    p = tmp_path / "r.toml"
    C.write_calibration_toml(p, cams[:2])
    p.write_text(p.read_text().replace('name = "a"', 'name = "b"'))
    with pytest.raises(InputError) as e:
        C.read_calibration_toml(p)
    assert str(e.value) == f"{p}: duplicate camera names: b"


# ---- TOML reader on hand-written files ---------------------------------------------------------
CAM = """[{key}]
{name}size = [ 1919.6, 1080.4]
matrix = [ [ 1000.0, 0.0, 960.0], [ 0.0, 1000.0, 540.0], [ 0.0, 0.0, 1.0]]
distortions = {dist}
rotation = [ 0.1, 0.2, 0.3]
translation = [ 0.0, 0.0, 3.0]
{extra}
"""


def _toml(tmp_path, *, key="cam1", name='name = "cam1"\n', dist="[ 0.1, 0.0, 0.0, 0.0]", extra="", head="", tail=""):
    p = tmp_path / "c.toml"
    p.write_text(head + CAM.format(key=key, name=name, dist=dist, extra=extra) + tail)
    return p


def _msg(p):
    with pytest.raises(InputError) as e:
        C.load_calibration(p)
    return str(e.value)


def test_toml_reader_defaults_and_non_camera_tables(tmp_path):
    head = 'title = "x"\n[capture_volume]\nsize = [1, 2]\n[charuco]\nsquares = 5\n[checkerboard]\ncorners = 4\n'
    p = _toml(tmp_path, key="cam_7", name="", head=head, tail="[metadata]\nadjusted = false\n")
    (cam,) = C.read_calibration_toml(p)
    assert cam.name == "cam_7"  # no name: the table name
    assert cam.size == (1920, 1080)  # rounded
    assert cam.dist.tolist() == [0.1, 0, 0, 0, 0] and cam.dist_model == "opencv"
    assert np.allclose(cam.R, _rot([0.1, 0.2, 0.3]), atol=1e-14) and cam.t.tolist() == [0, 0, 3]
    # a single radial coefficient is a valid OpenCV distortion vector
    assert C.read_calibration_toml(_toml(tmp_path, dist="[ -0.05]"))[0].dist.tolist() == [-0.05, 0, 0, 0, 0]
    # 8 coefficients with zero rational terms are accepted; 9, or none, are not
    assert C.read_calibration_toml(_toml(tmp_path, dist="[0.1, 0.2, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0]"))[0].dist[4] == 0.3
    assert _msg(_toml(tmp_path, dist="[0.1, 0, 0, 0, 0, 0, 0, 0, 0]")) == \
        f"{tmp_path / 'c.toml'}: camera 'cam1': field 'distortions' has shape (9,)"
    assert _msg(_toml(tmp_path, dist="[]")) == f"{tmp_path / 'c.toml'}: camera 'cam1': field 'distortions' has shape (0,)"
    # fisheye = false is fine, absent is fine
    assert C.read_calibration_toml(_toml(tmp_path, extra="fisheye = false"))[0].name == "cam1"


def test_toml_reader_messages(tmp_path):
    p = tmp_path / "c.toml"
    base = _toml(tmp_path).read_text()
    p.write_text(base.replace("size = [ 1919.6, 1080.4]\n", "").replace("rotation = [ 0.1, 0.2, 0.3]\n", ""))
    assert _msg(p) == f"{p}: camera 'cam1': missing fields 'size', 'rotation'"
    p.write_text(base.replace("translation = [ 0.0, 0.0, 3.0]\n", ""))
    assert _msg(p) == f"{p}: camera 'cam1': missing field 'translation'"
    p.write_text(base.replace("[ 0.0, 0.0, 3.0]", '[ 0.0, "a", 3.0]'))
    assert _msg(p) == f"{p}: camera 'cam1': field 'translation' is not numeric: [0.0, 'a', 3.0]"
    p.write_text(base.replace("[ 0.0, 0.0, 3.0]", "[ 0.0, inf, 3.0]"))
    assert _msg(p) == f"{p}: camera 'cam1': field 'translation' contains NaN or infinite values"
    p.write_text(base.replace("[ 0.1, 0.2, 0.3]", "[ 0.1, 0.2]"))
    assert _msg(p) == f"{p}: camera 'cam1': field 'rotation' has shape (2,)"
    p.write_text(base.replace("size = [ 1919.6, 1080.4]", "size = [ 1919.6, 1080.4, 3.0]"))
    assert _msg(p) == f"{p}: camera 'cam1': field 'size' has shape (3,)"
    p.write_text(base.replace("[ 0.0, 0.0, 1.0]]", "[ 0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]"))
    assert _msg(p) == f"{p}: camera 'cam1': field 'matrix' has shape (4, 3)"
    p.write_text(base.replace("[ 1000.0, 0.0, 960.0]", "[ -1000.0, 0.0, 960.0]"))
    assert _msg(p) == f"{p}: camera 'cam1': focal lengths must be positive"
    p.write_text(base + "fisheye = true\n")
    assert _msg(p) == f"{p}: camera 'cam1': fisheye calibrations are not supported"
    p.write_text("[metadata]\nadjusted = false\n[charuco]\nx = 1\n")
    assert _msg(p) == f"{p}: no camera tables in the calibration file"
    p.write_text("[cam1\n")
    assert _msg(p).startswith(f"{p}: not a valid TOML calibration file (")
    p.write_bytes(b'[cam1]\nname = "\xff"\n')
    assert _msg(p).startswith(f"{p}: not a valid TOML calibration file (")
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(InputError) as e:
        C.read_calibration_toml(d)
    assert str(e.value) == f"{d}: cannot read calibration: Is a directory"


def test_load_calibration_dispatch(tmp_path):
    p = _toml(tmp_path)
    upper = tmp_path / "C.TOML"
    upper.write_text(p.read_text())
    assert C.load_calibration(upper)[0].name == "cam1"
    q = tmp_path / "lab.qca"
    q.write_text(_qca([_qcam("c1")]))
    assert [c.name for c in C.load_calibration(q)] == ["c1"]
    assert C.load_calibration(q)[0].size == (1088, 1920)  # binning 1 by default
    assert C.load_calibration(q, binning_factor=2)[0].size == (544, 960)
    x = tmp_path / "c.json"
    x.write_text("{}")
    assert _msg(x) == f"{x}: unknown calibration format (expected a Pose2Sim .toml or a Qualisys .qca.txt)"
    assert _msg(tmp_path / "none.toml") == f"{tmp_path / 'none.toml'}: calibration file not found"


# ---- Qualisys ----------------------------------------------------------------------------------
def _qcam(serial, model="none", fov=(0, 0, 1087, 1919), intr=None, tr=None):
    fov = dict(zip(("left", "top", "right", "bottom"), fov, strict=True)) if isinstance(fov, tuple) else fov
    i = {"centerPointU": 34110.25, "centerPointV": 60680.5, "focalLengthU": 107599.5, "focalLengthV": 107588.75,
         "radialDistortion1": -0.046, "radialDistortion2": 0.14, "radialDistortion3": 0.0128,
         "tangentalDistortion1": 0.000608, "tangentalDistortion2": 0.00069, **(intr or {})}
    R = _rot([0.4, -1.1, 0.3])
    t = {f"r{a + 1}{b + 1}": R[a, b] for a in range(3) for b in range(3)}
    t.update(x=1460.5, y=-1909.25, z=1896.75)
    t.update(tr or {})
    attrs = lambda d: " ".join(f'{k}="{v}"' for k, v in d.items() if v is not None)  # noqa: E731
    ser = "" if serial is None else f' serial="{serial}"'
    mod = "" if model is None else f' model="{model}"'
    return (f'<camera active="1"{mod}{ser}><fov_video {attrs(fov)}/><transform {attrs(t)}/>'
            f'<intrinsic {attrs(i)}/></camera>')


def _qca(cams):
    return "<?xml version='1.0'?><calibration><cameras>" + "".join(cams) + "</cameras></calibration>"


def test_qca_conversion_by_hand(tmp_path):
    p = tmp_path / "c.qca.txt"
    p.write_text(_qca([_qcam("c1", model="Miqus Video", fov=(16, 8, 1103, 1927))]))
    for binning in (1, 2):
        (cam,) = C.read_qca(p, binning_factor=binning)
        s = 64.0 * binning
        assert cam.size == (round(1088 / binning), round(1920 / binning))
        assert np.allclose(cam.K, [[107599.5 / s, 0, 34110.25 / s - 16], [0, 107588.75 / s, 60680.5 / s - 8], [0, 0, 1]],
                           rtol=1e-15)
        # OpenCV order k1 k2 p1 p2 k3, every coefficient / 64 / binning (as Pose2Sim), k3 kept
        assert np.allclose(cam.dist, np.array([-0.046, 0.14, 0.000608, 0.00069, 0.0128]) / s, rtol=1e-15)
        M = _rot([0.4, -1.1, 0.3])
        R = np.diag([1.0, -1.0, -1.0]) @ M
        assert np.allclose(cam.R, R, atol=1e-15)
        assert np.allclose(cam.center, [1.4605, -1.90925, 1.89675], atol=1e-12)  # mm -> m
        assert np.allclose(cam.t, -R @ [1.4605, -1.90925, 1.89675], atol=1e-12)


def test_qca_camera_filter_order_and_messages(tmp_path):
    p = tmp_path / "c.qca.txt"
    p.write_text(_qca([_qcam("cam10"), _qcam("cam2", model="Oqus VIDEO"), _qcam("m1", model="Oqus 700+"),
                       _qcam("Cam1")]))
    assert [c.name for c in C.read_qca(p)] == ["Cam1", "cam2", "cam10"]  # natural order, case-insensitive

    def msg(cams):
        p.write_text(_qca(cams))
        with pytest.raises(InputError) as e:
            C.read_qca(p)
        return str(e.value)

    assert msg([_qcam("m1", model="Oqus 700+")]) == f"{p}: no video cameras (model 'video' or 'none') in the calibration"
    assert msg([]) == f"{p}: no <cameras>/<camera> elements: not a Qualisys calibration"
    assert msg([_qcam(None)]) == f"{p}: camera '#1': missing field 'serial'"
    assert msg([_qcam("a"), _qcam("b", intr={"focalLengthV": None})]) == \
        f"{p}: camera 'b': missing field 'focalLengthV' in <intrinsic>"
    assert msg([_qcam("a", intr={"centerPointU": "12,5"})]) == f"{p}: camera 'a': centerPointU='12,5' is not a number"
    assert msg([_qcam("a", tr={"x": "nan"})]) == f"{p}: camera 'a': x is NaN or infinite"
    assert msg([_qcam("a", tr={"r22": 0.5})]).startswith(f"{p}: camera 'a': rotation is not orthonormal")
    assert msg([_qcam("a"), _qcam("a")]) == f"{p}: duplicate camera names: a"
    # every field, when missing, is named with its element
    full = {"left": 0, "top": 0, "right": 1087, "bottom": 1919}
    for attr in full:
        assert msg([_qcam("a", fov={**full, attr: None})]) == f"{p}: camera 'a': missing field '{attr}' in <fov_video>"
    for attr in ("centerPointU", "centerPointV", "focalLengthU", "radialDistortion3", "tangentalDistortion1",
                 "tangentalDistortion2"):
        assert msg([_qcam("a", intr={attr: None})]) == f"{p}: camera 'a': missing field '{attr}' in <intrinsic>"
    for attr in ("r11", "r23", "x", "z"):
        assert msg([_qcam("a", tr={attr: None})]) == f"{p}: camera 'a': missing field '{attr}' in <transform>"
    for elem in ("fov_video", "transform"):
        p.write_text(_qca([_qcam("a")]).replace(f"<{elem} ", "<other "))
        with pytest.raises(InputError) as e:
            C.read_qca(p)
        assert str(e.value) == f"{p}: camera 'a': missing <{elem}> element"
    # a camera without a model attribute is not a video camera
    p.write_text(_qca([_qcam("a", model=None), _qcam("b")]))
    assert [c.name for c in C.read_qca(p)] == ["b"]
    p.write_text(_qca([_qcam("a")]).replace("<intrinsic ", "<other "))
    with pytest.raises(InputError) as e:
        C.read_qca(p)
    assert str(e.value) == f"{p}: camera 'a': missing <intrinsic> element"
    p.write_text("<calibration><cameras>")
    with pytest.raises(InputError) as e:
        C.read_qca(p)
    assert str(e.value).startswith(f"{p}: not a valid Qualisys .qca.txt (XML) file (")
    with pytest.raises(InputError) as e:
        C.read_qca(tmp_path / "none.qca.txt")
    assert str(e.value) == f"{tmp_path / 'none.qca.txt'}: cannot read calibration: No such file or directory"


# ---- Human3.6M and helpers ---------------------------------------------------------------------
def test_h36m_cameras_from_the_package_data():
    data = json.loads((__import__("importlib.resources").resources.files("simspine.data")
                       / "h36m_cameras.json").read_text())
    cams = C.h36m_cameras("S5")
    for cam, intr, ext in zip(cams, data["intrinsics"], data["extrinsics"]["S5"], strict=True):
        assert cam.name == intr["id"] and cam.size == (intr["res_w"], intr["res_h"])
        assert cam.dist_model == "h36m"
        assert cam.dist.tolist() == list(intr["radial_distortion"]) + list(intr["tangential_distortion"])
        assert cam.K.tolist() == [[intr["focal_length"][0], 0, intr["center"][0]],
                                  [0, intr["focal_length"][1], intr["center"][1]], [0, 0, 1]]
        assert np.allclose(cam.center, np.asarray(ext["translation_mm"]) / 1000, atol=1e-12)
    with pytest.raises(InputError) as e:
        C.h36m_cameras("S3")
    assert str(e.value) == "unknown Human3.6M subject 'S3' (known: S1, S5, S6, S7, S8, S9, S11)"


def test_rodrigues_helpers_match_opencv():
    for v in ([0.1, -0.2, 0.3], [2.9, -0.4, 0.2], [0.0, 0.0, 0.0]):
        R = C.rodrigues_to_matrix(np.array(v).reshape(3, 1))
        assert np.allclose(R, _rot(v), atol=1e-14)
        assert np.allclose(C.matrix_to_rodrigues(R), cv2.Rodrigues(R)[0].ravel(), atol=1e-12)
    from Pose2Sim.common import natural_sort_key

    names = ["c10", "C2", "c1", "c1b", "cam_1", "cama1", "Cam_2", "camB"]
    assert sorted(names, key=C._natural_key) == sorted(names, key=natural_sort_key)
    assert sorted(["cama", "cam_"], key=C._natural_key) == ["cam_", "cama"]  # '_' sorts before letters, as lower case
