"""Property-based tests (hypothesis) for the readers/writers and the geometry (issue 16).

* random valid inputs round-trip: TRC, MOT, OpenPose JSON, calibration TOML, Session2D npz;
* random malformed inputs (truncated or garbled bytes, NaN in a calibration, wrong counts) give
  simspine's own error (:class:`simspine.errors.SimspineError`), never another exception;
* geometry: exact projections of random points seen by random cameras triangulate back to the
  point; distortion followed by undistortion is the identity.

Examples per test are kept small so the default suite stays fast: the ``ci`` profile (default)
runs 30 examples without deadline; ``HYPOTHESIS_PROFILE=thorough`` runs 500.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from simspine.calibration import read_calibration_toml, write_calibration_toml
from simspine.cameras import Camera
from simspine.errors import SimspineError
from simspine.io.mot import read_mot, write_mot
from simspine.io.openpose import read_openpose_folder, read_openpose_frame, write_openpose_folder
from simspine.io.session import Session2D
from simspine.io.trc import read_trc, write_trc
from simspine.trajectories import Trajectories

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10)
COORD = st.floats(-10.0, 10.0, allow_nan=False, width=64)


@st.composite
def times(draw, n):
    steps = draw(arrays(float, n, elements=st.floats(1e-3, 1.0)))
    start = draw(st.floats(0.0, 100.0))
    return start + np.cumsum(steps) - steps[0]


@st.composite
def trajectories(draw):
    T = draw(st.integers(1, 6))
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    xyz = draw(arrays(float, (T, len(names), 3), elements=COORD))
    missing = draw(arrays(bool, (T, len(names))))
    xyz[missing] = np.nan
    return Trajectories(draw(times(T)), names, xyz)


_BASE = tempfile.TemporaryDirectory(prefix="simspine_prop_")  # removed when the session ends


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(dir=_BASE.name))


def _call(fn, *a):
    """Run a reader: a result or simspine's own error are both fine; anything else fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*a)
        except SimspineError:
            return None


# ---- round trips ---------------------------------------------------------------------------------
@given(trajectories(), st.sampled_from(["m", "mm", "cm"]))
def test_trc_round_trip(traj, units):
    path = _tmp() / "x.trc"
    write_trc(path, traj, units=units)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file we wrote reads back without any warning
        back = read_trc(path)
    assert back.names == traj.names and back.frame == traj.frame
    np.testing.assert_allclose(back.time, traj.time, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(back.xyz, traj.xyz, rtol=1e-9, atol=1e-12)  # NaN where NaN
    assert np.array_equal(back.conf, np.isfinite(traj.xyz).all(-1).astype(float))


@given(st.integers(1, 6).flatmap(lambda T: st.tuples(
    times(T), st.lists(NAME.filter(lambda n: n != "time"), min_size=1, max_size=5, unique=True), st.just(T))),
    st.booleans(), st.data())
def test_mot_round_trip(tnt, in_degrees, data):
    time, names, T = tnt
    values = data.draw(arrays(float, (T, len(names)), elements=st.floats(-1e4, 1e4, allow_nan=False)))
    path = _tmp() / "x.mot"
    write_mot(path, time, names, values, in_degrees=in_degrees)
    back = read_mot(path)
    assert back.names == names and back.in_degrees == in_degrees
    np.testing.assert_allclose(back.time, time, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(back.values, values, rtol=1e-11, atol=1e-12)


@given(st.integers(1, 4), st.integers(1, 8), st.integers(0, 50), st.data())
def test_openpose_round_trip(T, K, start, data):
    xy = data.draw(arrays(float, (T, K, 2), elements=st.floats(0.5, 4000.0)))
    conf = data.draw(arrays(float, (T, K), elements=st.floats(0.01, 1.0)))
    conf[data.draw(arrays(bool, (T, K)))] = 0.0  # undetected keypoints
    conf[0, 0] = 0.5  # someone in the first frame, so K is known
    folder = _tmp() / "cam1_json"
    files = write_openpose_folder(folder, xy, conf, start=start)
    assert [f.name for f in files] == [f"cam1_{start + i:06d}.json" for i in range(T)]
    bxy, bconf = read_openpose_folder(folder)
    seen = conf > 0
    np.testing.assert_allclose(bconf, conf)
    np.testing.assert_allclose(bxy[seen], xy[seen], rtol=1e-12)
    assert np.isnan(bxy[~seen]).all()


@st.composite
def cameras(draw, n=None):
    n = draw(st.integers(1, 4)) if n is None else n
    names = draw(st.lists(NAME, min_size=n, max_size=n, unique=True))
    cams = []
    for name in names:
        q = draw(arrays(float, 4, elements=st.floats(-1, 1))) + np.array([1e-3, 0, 0, 0])
        q = q / np.linalg.norm(q)
        from simspine.cameras import rotation_from_quaternion

        R = rotation_from_quaternion(q)
        f = draw(st.floats(200.0, 3000.0))
        K = [[f, 0, draw(st.floats(100, 1000))], [0, f * draw(st.floats(0.9, 1.1)), draw(st.floats(100, 1000))], [0, 0, 1]]
        dist = draw(arrays(float, 5, elements=st.floats(-0.2, 0.2)))
        t = draw(arrays(float, 3, elements=st.floats(-5, 5)))
        size = (draw(st.integers(100, 4000)), draw(st.integers(100, 4000)))
        cams.append(Camera(name, size, K, dist, R, t))
    return cams


@given(cameras())
def test_calibration_toml_round_trip(cams):
    path = _tmp() / "Calib.toml"
    write_calibration_toml(path, cams)
    back = read_calibration_toml(path)
    assert [c.name for c in back] == [c.name for c in cams]
    for a, b in zip(cams, back, strict=True):
        assert a.size == b.size
        np.testing.assert_allclose(b.K, a.K, rtol=1e-12)
        np.testing.assert_allclose(b.dist, a.dist, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b.R, a.R, atol=1e-9)
        np.testing.assert_allclose(b.t, a.t, rtol=1e-12, atol=1e-15)


@given(st.integers(2, 3).flatmap(lambda C: cameras(C)), st.integers(1, 5), st.integers(1, 6), st.data())
def test_session_npz_round_trip(cams, T, K, data):
    C = len(cams)
    kp = data.draw(arrays(float, (C, T, K, 2), elements=st.floats(-100, 5000)))
    conf = data.draw(arrays(float, (C, T, K), elements=st.floats(0, 1)))
    kp[conf == 0] = np.nan
    names = data.draw(st.lists(NAME, min_size=K, max_size=K, unique=True))
    ts = data.draw(times(T))
    s = Session2D(cams, kp, conf, ts, names, skeleton="X", fps=50.0, meta={"a": [1, 2]})
    path = s.save(_tmp() / "s.npz")
    b = Session2D.load(path)
    assert b.camera_names == s.camera_names and b.keypoint_names == names and b.fps == 50.0
    assert b.skeleton == "X" and b.meta == {"a": [1, 2]}
    np.testing.assert_array_equal(b.keypoints, kp)
    np.testing.assert_array_equal(b.conf, conf)
    np.testing.assert_array_equal(b.timestamps, ts)
    for a, c in zip(cams, b.cameras, strict=True):
        np.testing.assert_array_equal(a.K, c.K)
        np.testing.assert_array_equal(a.R, c.R)


# ---- malformed inputs ------------------------------------------------------------------------------
def _valid_files(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    traj = Trajectories(np.arange(4) / 50, ["A", "B"], rng.normal(size=(4, 2, 3)))
    cams = [Camera(f"cam{i}", (1000, 1000), [[1000, 0, 500], [0, 1000, 500], [0, 0, 1]], [0.1, 0, 0, 0, 0],
                   t=[0, 0, 3.0 + i]) for i in range(2)]
    out = {"trc": write_trc(root / "x.trc", traj),
           "mot": write_mot(root / "x.mot", traj.time, ["a", "b"], rng.normal(size=(4, 2))),
           "json": write_openpose_folder(root / "c_json", rng.uniform(1, 900, (1, 3, 2)), np.full((1, 3), 0.9))[0],
           "toml": write_calibration_toml(root / "Calib.toml", cams)}
    uv = rng.uniform(0, 900, (2, 3, 4, 2))
    out["npz"] = Session2D(cams, uv, np.ones((2, 3, 4)), np.arange(3) / 50, list("abcd"), fps=50.0).save(root / "s.npz")
    return out


_ROOT = None


def _originals() -> dict[str, bytes]:
    global _ROOT
    if _ROOT is None:
        root = _tmp()
        _ROOT = {k: p.read_bytes() for k, p in _valid_files(root).items()}
    return _ROOT


READERS = {
    "trc": read_trc,
    "mot": read_mot,
    "json": read_openpose_frame,
    "toml": read_calibration_toml,
    "npz": Session2D.load,
}


@pytest.mark.parametrize("kind", sorted(READERS))
@given(data=st.data())
def test_garbled_files_give_simspine_errors(kind, data):
    """Truncated files, flipped bytes and inserted junk: read or refused with InputError."""
    raw = bytearray(_originals()[kind])
    how = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    else:
        pos = data.draw(st.integers(0, len(raw)))
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=20))
    path = _tmp() / f"bad.{kind}"
    path.write_bytes(bytes(raw))
    _call(READERS[kind], path)


@given(st.sampled_from(["matrix", "distortions", "rotation", "translation", "size"]),
       st.sampled_from(["nan", "inf", "-inf"]))
def test_nan_in_calibration_is_refused(field, bad):
    text = _originals()["toml"].decode()
    lines = text.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{field} = "))
    head, _, rest = lines[i].partition("[")
    # replace the first number of the field by nan/inf
    num_end = min(j for j in (rest.find(","), rest.find("]")) if j >= 0)
    first = rest[:num_end].lstrip(" [")
    lines[i] = head + "[" + rest[:num_end].replace(first, bad, 1) + rest[num_end:]
    path = _tmp() / "nan.toml"
    path.write_text("\n".join(lines))
    with pytest.raises(SimspineError, match="NaN or infinite"):
        read_calibration_toml(path)


@given(st.integers(1, 4), st.integers(-2, 2).filter(lambda d: d != 0))
def test_wrong_keypoint_count_in_openpose_is_refused(K, delta):
    path = _tmp() / "f_000000.json"
    path.write_text('{"people": [{"pose_keypoints_2d": [' + ",".join(["1.0"] * max(0, 3 * K + delta)) + "]}]}")
    with pytest.raises(SimspineError):
        read_openpose_frame(path, n_keypoints=K)


@given(st.integers(0, 3), st.integers(1, 3))
def test_trc_row_with_wrong_column_count_is_refused(row, drop):
    lines = _originals()["trc"].decode().splitlines()
    i = 5 + row  # data rows follow the 5 header lines
    lines[i] = "\t".join(lines[i].split("\t")[:-drop])
    path = _tmp() / "cols.trc"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SimspineError, match="columns"):
        read_trc(path)


# ---- geometry --------------------------------------------------------------------------------------
def _look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    z = target - centre
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * x + s * y, -s * x + c * y, z])


@st.composite
def rigs(draw):
    C = draw(st.integers(2, 5))
    base = draw(st.floats(0, 2 * np.pi))
    cams = []
    for i in range(C):
        # views at least ~50 degrees apart, never exactly facing (two facing rays are parallel)
        az = base + (np.pi / 2 if C == 2 else 2 * np.pi / C) * i + draw(st.floats(-0.3, 0.3))
        el = draw(st.floats(-0.4, 0.6))
        r = draw(st.floats(2.5, 6.0))
        centre = r * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        R = _look_at(centre, draw(arrays(float, 3, elements=st.floats(-0.2, 0.2))), draw(st.floats(-np.pi, np.pi)))
        f = draw(st.floats(500, 2000))
        k1 = draw(st.floats(-0.2, 0.2))
        cams.append(Camera(f"c{i}", (2000, 2000), [[f, 0, 1000], [0, f, 1000], [0, 0, 1]], [k1, 0, 0, 0, 0],
                           R=R, t=-R @ centre))
    return cams


@given(rigs(), arrays(float, (5, 3), elements=st.floats(-0.5, 0.5)))
def test_exact_projections_triangulate_to_the_point(cams, X):
    from simspine.multiview.triangulation import triangulate, triangulate_dlt

    uv = np.stack([c.project(X) for c in cams])  # (C, N, 2)
    res = triangulate(cams, uv, np.ones(uv.shape[:2]))
    assert res.valid.all()
    np.testing.assert_allclose(res.points, X, atol=1e-6)
    assert np.nanmax(res.reproj_error, initial=0.0) < 1e-4
    np.testing.assert_allclose(triangulate_dlt(cams, uv), X, atol=1e-6)


@given(st.floats(-0.3, 0.3), st.floats(-0.1, 0.1), st.floats(-0.05, 0.05), st.floats(-0.005, 0.005),
       st.floats(-0.005, 0.005), st.sampled_from(["opencv", "h36m"]),
       arrays(float, (8, 2), elements=st.floats(-0.5, 0.5)))
def test_distort_undistort_round_trip(k1, k2, k3, p1, p2, model, xy):
    dist = [k1, k2, p1, p2, k3] if model == "opencv" else [k1, k2, k3, p1, p2]
    cam = Camera("c", (1000, 1000), [[800, 0, 500], [0, 800, 500], [0, 0, 1]], dist, dist_model=model)
    back = cam.undistort_normalized(cam.distort_normalized(xy))
    np.testing.assert_allclose(back, xy, atol=1e-9)
    uv = cam.normalized_to_pixels(cam.distort_normalized(xy))
    np.testing.assert_allclose(cam.pixel_rays(uv), xy, atol=1e-9)
