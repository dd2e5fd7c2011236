"""``simspine triangulate`` on a small Pose2Sim-style session written here, and its bad-input errors."""

import json
import shutil

import numpy as np
import pytest

from simspine.calibration import h36m_cameras, write_calibration_toml
from simspine.cli import main
from simspine.frames import zup_to_yup
from simspine.io.openpose import write_openpose_folder
from simspine.io.trc import read_trc
from simspine.multiview.reconstruct import read_triangulation
from simspine.skeletons import spinetrack37

T, K = 12, 37


@pytest.fixture(scope="module")
def truth():
    rng = np.random.default_rng(0)
    base = np.c_[rng.uniform(-0.3, 0.3, K), rng.uniform(-0.3, 0.3, K), rng.uniform(0.1, 1.8, K)]
    return base[None] + 0.01 * np.arange(T)[:, None, None] * np.array([1.0, 0.5, 0.0])


def _session(folder, X, cams=None, frames=None):
    cams = cams or [c.converted("opencv", exact=False) for c in h36m_cameras("S9")]
    write_calibration_toml(folder / "calibration" / "Calib.toml", cams)
    for i, c in enumerate(cams):
        n = T if frames is None else frames[i]
        uv = c.project(X[:n])
        write_openpose_folder(folder / "pose" / f"{c.name}_json", uv, np.ones(uv.shape[:2]))
    (folder / "Config.toml").write_text("[project]\nframe_rate = 50\n")
    return cams


def test_triangulate_session_round_trip(tmp_path, truth, capsys):
    _session(tmp_path / "s", truth)
    assert main(["triangulate", str(tmp_path / "s"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "reproj px" in out and "excluded %" in out and "LShoulder" in out
    trc = read_trc(tmp_path / "out" / "triangulated.trc")
    assert trc.names == list(spinetrack37().names)
    assert "Y up" in trc.frame
    # the OpenPose JSON files keep a few decimals only: sub-millimetre agreement is the bound
    assert np.abs(trc.xyz - zup_to_yup(truth)).max() < 1e-3
    assert np.allclose(trc.time, np.arange(T) / 50)
    rep = json.loads((tmp_path / "out" / "triangulated_report.json").read_text())
    assert rep["valid_share"] == 1.0 and rep["mean_reproj_error_px"] < 0.1
    assert len(rep["keypoints"]) == K and rep["keypoints"][0]["reproj_error_mm"] is not None
    assert all(c["excluded_share"] == 0 for c in rep["cameras"])
    npz = read_triangulation(tmp_path / "out" / "triangulated.npz")
    assert np.allclose(npz.xyz, trc.xyz, atol=1e-8) and (npz.conf == 1).all()


def test_bad_sessions_give_clear_errors(tmp_path, truth, capsys):
    # fewer than two cameras
    s1 = tmp_path / "one"
    cams = _session(s1, truth)
    for c in cams[1:]:
        shutil.rmtree(s1 / "pose" / f"{c.name}_json")
    assert main(["triangulate", str(s1), "--out", str(tmp_path / "o1")]) == 2
    assert "at least 2" in capsys.readouterr().err
    # a camera folder that the calibration does not know
    s2 = tmp_path / "extra"
    cams = _session(s2, truth)
    shutil.copytree(s2 / "pose" / f"{cams[0].name}_json", s2 / "pose" / "cam99_json")
    assert main(["triangulate", str(s2), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "cam99_json" in err and "no camera in the calibration" in err
    # a camera whose last two frames have no file: missing there, not a refusal (frames are
    # identified by the number in the file name); the other three cameras still triangulate them
    s3 = tmp_path / "frames"
    _session(s3, truth, frames=[T, T, T - 2, T])
    assert main(["triangulate", str(s3), "--out", str(tmp_path / "o3")]) == 0
    capsys.readouterr()
    trc = read_trc(tmp_path / "o3" / "triangulated.trc")
    assert trc.n_frames == T and np.allclose(trc.time, np.arange(T) / 50)
    assert np.abs(trc.xyz - zup_to_yup(truth)).max() < 1e-3
    # no session at all
    assert main(["triangulate", str(tmp_path / "nope"), "--out", str(tmp_path / "o4")]) == 2
    assert "not found" in capsys.readouterr().err
