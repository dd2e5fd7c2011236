"""Calibration files: Qualisys conversion against Pose2Sim's own, TOML round trips, bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from simspine.calibration import (
    h36m_cameras,
    load_calibration,
    read_calibration_toml,
    read_qca,
    write_calibration_toml,
)
from simspine.cameras import Camera
from simspine.errors import InputError

POSE2SIM = Path(__import__("Pose2Sim").__file__).parent
QCA = POSE2SIM / "Demo_SinglePerson" / "calibration" / "Calib.qca.txt"


def _pose2sim_qca(path, binning=1):
    from Pose2Sim.calibration import calib_qca_fun

    logging.disable(logging.INFO)
    try:
        return calib_qca_fun(str(path), binning)
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("binning", [1, 2])
def test_qualisys_matches_pose2sim_converter(binning):
    _, C, S, D, K, R, T = _pose2sim_qca(QCA, binning)
    cams = read_qca(QCA, binning_factor=binning)
    assert [c.name for c in cams] == C == ["cam01", "cam02", "cam03", "cam04"]
    for cam, s, d, k, r, t in zip(cams, S, D, K, R, T, strict=True):
        assert cam.size == tuple(int(v) for v in s)
        assert np.abs(cam.K - k).max() < 1e-6
        assert np.abs(cam.R - cv2.Rodrigues(np.asarray(r, float))[0]).max() < 1e-6
        assert np.abs(cv2.Rodrigues(cam.R)[0].ravel() - r).max() < 1e-6
        assert np.abs(cam.t - t).max() < 1e-6
        assert np.abs(cam.dist[:4] - d).max() < 1e-12 and cam.dist[4] == 0


def test_qualisys_demo_cameras_see_the_subject():
    # Pose2Sim's demo subject stands near the world origin: every camera must see it in frame
    cams = load_calibration(QCA)
    for cam in cams:
        uv = cam.project(np.array([[0.0, 0.0, 1.0]]))[0]
        assert 0 < uv[0] < cam.size[0] and 0 < uv[1] < cam.size[1]


def test_toml_round_trip(tmp_path):
    R = cv2.Rodrigues(np.array([2.9, -0.4, 0.2]))[0]  # near pi: the hard case for Rodrigues
    extra = Camera("side view.2", (1920, 1080), [[1400.5, 0, 960.25], [0, 1401.75, 540.5], [0, 0, 1]],
                   [-0.1, 0.05, 0.001, -0.002, 0.01], R, [0.5, -1.25, 4.0])
    cams = read_qca(QCA) + [extra]
    path = tmp_path / "calib.toml"
    write_calibration_toml(path, cams, world_frame="Qualisys lab (Z up)")
    back = read_calibration_toml(path)
    assert [c.name for c in back] == [c.name for c in cams]
    for a, b in zip(cams, back, strict=True):
        assert a.size == b.size and a.dist_model == b.dist_model == "opencv"
        np.testing.assert_allclose(b.K, a.K, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.dist, a.dist, rtol=0, atol=1e-15)
        np.testing.assert_allclose(b.R, a.R, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.t, a.t, rtol=0, atol=1e-12)
    # no temporary file is left behind by the atomic write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.toml"]


def test_toml_interoperates_with_pose2sim(tmp_path):
    from Pose2Sim.calibration import toml_write
    from Pose2Sim.common import computeP

    # Pose2Sim reads ours: same projection matrices
    ours = tmp_path / "ours.toml"
    cams = read_qca(QCA)
    write_calibration_toml(ours, cams)
    for P, cam in zip(computeP(ours), cams, strict=True):
        assert np.abs(np.asarray(P)[:3] - cam.P).max() < 1e-9
    # we read Pose2Sim's: same cameras as its converter produced
    _, C, S, D, K, R, T = _pose2sim_qca(QCA)
    theirs = tmp_path / "Calib_qualisys.toml"
    toml_write(theirs, C, S, D, K, R, T)
    for cam, back in zip(cams, load_calibration(theirs), strict=True):
        assert back.name == cam.name and back.size == cam.size
        assert np.abs(back.R - cam.R).max() < 1e-9 and np.abs(back.t - cam.t).max() < 1e-9
        assert np.abs(back.K - cam.K).max() < 1e-9


def test_h36m_camera_needs_explicit_fit_for_toml(tmp_path):
    cams = h36m_cameras("S9")
    with pytest.raises(InputError, match="no exact conversion"):
        write_calibration_toml(tmp_path / "h.toml", cams)
    write_calibration_toml(tmp_path / "h.toml", cams, fit_distortion=True)
    back = read_calibration_toml(tmp_path / "h.toml")
    X = np.random.default_rng(0).uniform([-1.5, -1.5, 0], [1.5, 1.5, 2], (200, 3))
    for a, b in zip(cams, back, strict=True):
        # the fitted OpenCV model reprojects within a fraction of a pixel of Human3.6M's
        assert np.nanmax(np.abs(a.project(X) - b.project(X))) < 0.5


def test_h36m_all_subjects_valid():
    for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11"):
        cams = h36m_cameras(s)
        assert len(cams) == 4 and all(c.dist_model == "h36m" for c in cams)
        for c in cams:
            assert np.abs(c.R @ c.R.T - np.eye(3)).max() < 1e-6
            assert 3 < np.linalg.norm(c.center) < 7  # cameras stand 3-7 m from the room centre
    with pytest.raises(InputError, match="unknown Human3.6M subject 'S2'"):
        h36m_cameras("S2")


# ---- bad input -------------------------------------------------------------------------------
GOOD = """[cam1]
name = "cam1"
size = [ 1920.0, 1080.0]
matrix = [ [ 1000.0, 0.0, 960.0], [ 0.0, 1000.0, 540.0], [ 0.0, 0.0, 1.0]]
distortions = [ 0.0, 0.0, 0.0, 0.0]
rotation = [ 0.1, 0.2, 0.3]
translation = [ 0.0, 0.0, 3.0]
fisheye = false

[metadata]
adjusted = false
"""


def _bad(tmp_path, text, name="bad.toml"):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_calibration(p)
    msg = str(e.value)
    assert msg.startswith(str(p) + ": ")
    return msg


def test_good_toml_loads(tmp_path):
    p = tmp_path / "good.toml"
    p.write_text(GOOD)
    (cam,) = load_calibration(p)
    assert cam.name == "cam1" and cam.size == (1920, 1080)
    np.testing.assert_allclose(cam.R, cv2.Rodrigues(np.array([0.1, 0.2, 0.3]))[0], atol=1e-14)


def test_missing_field_is_named(tmp_path):
    msg = _bad(tmp_path, GOOD.replace("translation = [ 0.0, 0.0, 3.0]\n", ""))
    assert "camera 'cam1': missing field 'translation'" in msg


def test_nan_is_rejected(tmp_path):
    msg = _bad(tmp_path, GOOD.replace("[ 1000.0, 0.0, 960.0]", "[ nan, 0.0, 960.0]"))
    assert "'matrix' contains NaN" in msg


def test_non_orthonormal_rotation_is_rejected(tmp_path):
    text = GOOD.replace("rotation = [ 0.1, 0.2, 0.3]", "rotation = [ [1.0, 0.0, 0.0], [0.0, 1.1, 0.0], [0.0, 0.0, 1.0]]")
    msg = _bad(tmp_path, text)
    assert "camera 'cam1'" in msg and "not orthonormal" in msg
    # a proper 3x3 rotation in the same place is accepted
    ok = tmp_path / "ok.toml"
    ok.write_text(GOOD.replace("rotation = [ 0.1, 0.2, 0.3]", "rotation = [ [0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]"))
    assert load_calibration(ok)[0].R[1, 0] == 1.0


def test_corrupt_and_unsupported_files(tmp_path):
    assert "not a valid TOML" in _bad(tmp_path, "[cam1\nname = ")
    assert "no camera tables" in _bad(tmp_path, "[metadata]\nadjusted = false\n")
    assert "fisheye calibrations are not supported" in _bad(tmp_path, GOOD.replace("fisheye = false", "fisheye = true"))
    assert "has shape (2,)" in _bad(tmp_path, GOOD.replace("translation = [ 0.0, 0.0, 3.0]", "translation = [ 0.0, 3.0]"))
    assert "not a valid Qualisys" in _bad(tmp_path, "<calibration><cameras>", name="c.qca.txt")
    qca = QCA.read_text().replace('focalLengthU="107599.671875" ', "", 1)
    assert "missing field 'focalLengthU'" in _bad(tmp_path, qca, name="d.qca.txt")
    assert "unknown calibration format" in _bad(tmp_path, "x", name="calib.yaml")
    with pytest.raises(InputError, match="not found"):
        load_calibration(tmp_path / "nope.toml")
