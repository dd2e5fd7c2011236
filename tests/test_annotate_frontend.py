"""``simspine.annotate.annotate`` front end (triangulate -> filter -> merge): outputs, frames, resume."""

import json
import shutil

import numpy as np
import pytest

from simspine.annotate import annotate, load_trusted
from simspine.calibration import h36m_cameras, write_calibration_toml
from simspine.errors import InputError
from simspine.frames import zup_to_yup
from simspine.io.openpose import write_openpose_folder
from simspine.io.trc import read_trc
from simspine.multiview.filtering import FilterOptions
from simspine.skeletons import H36M_TO_SPINETRACK, h36m32, spinetrack37

T, K, RATE = 60, 37, 50.0


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A smooth moving point set (Human3.6M world, Z up, m) seen by the four S9 cameras."""
    folder = tmp_path_factory.mktemp("session")
    rng = np.random.default_rng(0)
    base = np.c_[rng.uniform(-0.3, 0.3, K), rng.uniform(-0.3, 0.3, K), rng.uniform(0.1, 1.8, K)]
    t = np.arange(T) / RATE
    X = base[None] + np.stack([0.3 * np.sin(t), 0.2 * t, 0.02 * np.sin(3 * t)], -1)[:, None]
    cams = [c.converted("opencv", exact=False) for c in h36m_cameras("S9")]
    write_calibration_toml(folder / "calibration" / "Calib.toml", cams)
    for c in cams:
        uv = c.project(X) + rng.normal(scale=0.5, size=(T, K, 2))
        write_openpose_folder(folder / "pose" / f"{c.name}_json", uv, np.full((T, K), 0.9))
    (folder / "Config.toml").write_text(f"[project]\nframe_rate = {RATE:g}\n")
    return folder, X


def test_front_end_outputs_and_resume(session, tmp_path):
    folder, X = session
    out = tmp_path / "out"
    lines = []
    res = annotate(folder, out, biomech=False, log=lines.append)
    for name in ("triangulated.trc", "triangulated_report.json", "filtered.trc", "markers.trc", "summary.json",
                 "summary.txt", "stages.json"):
        assert (out / name).exists(), name
    truth = zup_to_yup(X)
    assert "Y up" in res.markers.frame
    assert np.nanmax(np.abs(res.triangulated.xyz - truth)) < 0.02
    assert np.linalg.norm(res.triangulated.xyz - truth, axis=-1).mean() < 0.005
    mid = slice(10, -10)
    # filtering lowers the noise of the triangulated points
    err_tri = np.linalg.norm(res.triangulated.xyz - truth, axis=-1)[mid].mean()
    err_fil = np.linalg.norm(res.filtered.xyz - truth, axis=-1)[mid].mean()
    assert err_fil < err_tri
    assert res.markers.names == list(spinetrack37().names)
    assert np.allclose(res.markers.conf, 0.5 * 0.9)  # pseudo confidence x 2D confidence
    trc = read_trc(out / "markers.trc")
    assert np.allclose(trc.xyz, res.markers.xyz, atol=1e-8)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["triangulate"]["valid_share"] == 1.0
    # resume: nothing recomputed; a changed filter option recomputes filter and merge only
    res2 = annotate(folder, out, biomech=False, log=lines.append)
    assert res2.skipped == ["triangulate", "filter", "merge"]
    assert np.allclose(res2.markers.xyz, res.markers.xyz)
    res3 = annotate(folder, out, biomech=False, filtering=FilterOptions(cutoff_hz=8.0), log=lines.append)
    assert res3.skipped == ["triangulate"]
    res4 = annotate(folder, out, biomech=False, resume=False, log=lines.append)
    assert res4.skipped == []
    assert (out / "report.html").is_file()


def test_no_report_writes_no_report(session, tmp_path):
    """report=False (annotate --no-report) leaves report.html out (the triangulation report once
    shadowed the argument, so the page was always written) and out of the summary's outputs."""
    folder, _ = session
    out = tmp_path / "out"
    annotate(folder, out, biomech=False, report=False, log=lambda s: None)
    assert (out / "markers.trc").is_file()
    assert not (out / "report.html").exists()
    assert "report.html" not in json.loads((out / "summary.json").read_text())["outputs"]


def test_resume_with_outputs_inside_the_session_folder(session, tmp_path):
    # outputs written inside the session folder are not session inputs: a re-run still resumes
    folder = tmp_path / "session"
    shutil.copytree(session[0], folder)
    annotate(folder, folder / "annotated", biomech=False, log=lambda s: None)
    res = annotate(folder, folder / "annotated", biomech=False, log=lambda s: None)
    assert res.skipped == ["triangulate", "filter", "merge"]
    # a changed input file is noticed
    first = sorted((folder / "pose").iterdir())[0]
    json_file = sorted(first.iterdir())[0]
    json_file.write_text(json_file.read_text())
    res = annotate(folder, folder / "annotated", biomech=False, log=lambda s: None)
    assert res.skipped == []


def test_merge_with_h36m_joints(session, tmp_path):
    folder, X = session
    st, h = spinetrack37(), h36m32()
    joints = np.full((T, 32, 3), np.nan)
    for src, dst in H36M_TO_SPINETRACK.items():
        joints[:, h.index(src)] = X[:, st.index(dst)]
    np.save(tmp_path / "joints.npy", joints * 1000.0)  # Human3.6M raw units: mm
    res = annotate(folder, tmp_path / "out", trusted=tmp_path / "joints.npy", biomech=False, log=lambda s: None)
    k = st.index("LWrist")
    assert np.allclose(res.markers.xyz[:, k], zup_to_yup(X[:, k]), atol=1e-9)  # trusted, exact
    assert np.allclose(res.markers.conf[:, k], 1.0)
    s = st.index("Spine_03")
    assert np.allclose(res.markers.conf[:, s], 0.45)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert abs(summary["stages"]["merge"]["sample_sources"]["trusted"] - 12 / 37) < 1e-9


def test_trusted_markers_that_do_not_fit_name_the_file(session, tmp_path):
    from simspine.io.trc import write_trc
    from simspine.trajectories import Trajectories

    folder, _ = session
    odd = Trajectories(np.arange(T) / RATE, ["Foo", "Bar"], np.zeros((T, 2, 3)))
    write_trc(tmp_path / "odd.trc", odd)
    with pytest.raises(InputError, match="odd.trc: no trusted marker corresponds to a model marker name"):
        annotate(folder, tmp_path / "out", trusted=tmp_path / "odd.trc", biomech=False, log=lambda s: None)


def test_trusted_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_trusted(tmp_path / "nope.trc")
    np.save(tmp_path / "bad.npy", np.zeros((5, 20, 3)))
    with pytest.raises(InputError, match="bad.npy"):
        load_trusted(tmp_path / "bad.npy")
    np.savez(tmp_path / "joints.npz", positions=np.zeros((5, 32, 3)))
    data = (tmp_path / "joints.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(InputError, match="cut.npz: not a valid Human3.6M joints file"):
        load_trusted(tmp_path / "cut.npz")
    (tmp_path / "x.csv").write_text("1,2,3\n")
    with pytest.raises(InputError, match="unknown trusted marker format"):
        load_trusted(tmp_path / "x.csv")


@pytest.mark.slow
def test_annotate_end_to_end_on_synthetic_session(tmp_path):
    """Full annotate (with scaling, IK, FK) on a 1 s synthetic session: every stage's keypoints
    against the generator's truth, and a second run reuses everything."""
    from simspine.metrics import mpjpe
    from simspine.synth.session import SynthConfig, synthesize

    truth = synthesize(tmp_path / "session", SynthConfig(seconds=1.0, seed=3)).truth.keypoints
    res = annotate(tmp_path / "session", tmp_path / "out", progress=False, log=lambda s: None)
    assert res.keypoints is not None and res.coordinates is not None
    assert (tmp_path / "out" / "model" / "keypoints37.trc").exists()
    err_tri = mpjpe(res.triangulated.xyz, truth.xyz)
    err_fk = mpjpe(res.keypoints.xyz, truth.xyz)
    assert err_fk < 30 and err_fk < err_tri
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stages"]["ik"]["marker_rms_mean_mm"] < 40
    res2 = annotate(tmp_path / "session", tmp_path / "out", progress=False, log=lambda s: None)
    assert res2.skipped == ["triangulate", "filter", "merge"]
    assert np.allclose(res2.keypoints.xyz, res.keypoints.xyz, atol=1e-6)
