"""Values of biomech/ik.py's pure-numpy and file functions, written out by hand (issue 16, mutation
testing): robust losses at and around their threshold, error summaries, the IK errors CSV read
back with pandas, the IK ``.mot`` read back with OpenSim, the frame-rate scaling of the smoothing
weight, backends by name, IKResult's accessors, the job fingerprint recomputed from its definition
and the resumption rules of ``finished_result``."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from simspine.biomech import ik
from simspine.biomech.ik import (
    IKJob,
    IKResult,
    JacobianIK,
    OpenSimSolverIK,
    error_figures,
    finished_result,
    huber_rho,
    huber_weight,
    job_fingerprint,
    log_rho,
    log_weight,
    make_backend,
    read_ik_errors,
    robust_threshold,
    smoothness_for_rate,
    write_ik_errors,
    write_ik_mot,
)
from simspine.biomech.model import coordinate_info, load_model
from simspine.errors import InputError
from simspine.trajectories import Trajectories


@pytest.fixture(scope="module")
def coords(model_path):
    return coordinate_info(load_model(model_path))


def small_result(robust=True):
    """2 coordinates (one rotation, one translation), 3 frames, 3 markers."""
    err = np.array([[0.001, np.nan, 0.03], [0.002, 0.004, np.nan], [0.5, 0.006, 0.02]])
    rw = np.array([[1.0, np.nan, 0.25], [1.0, 1.0, np.nan], [0.01, 1.0, 1.0]]) if robust else None
    return IKResult(time=np.array([0.0, 0.02, 0.04]), coordinate_names=["rx", "tx"],
                    values=np.array([[np.pi / 2, 0.5], [np.pi, -0.25], [-np.pi / 4, 1.0]]),
                    rotational=np.array([True, False]), marker_names=["A", "B", "C"],
                    marker_errors=err, rms=np.array([0.0212, 0.00316, 0.289]),
                    max=np.array([0.03, 0.004, 0.5]), n_markers=np.array([2, 2, 3]), backend="jacobian-gn",
                    seconds=0.5, meta={"robust": {"loss": "log", "k": 5.0, "min_delta_m": 0.01}} if robust else {},
                    robust_weights=rw, robust_delta=np.array([0.01, 0.01, 0.02]) if robust else None)


# ---------------------------------------------------------------------------------------------
# robust losses


def test_robust_threshold_by_hand():
    e = np.array([0.1, 0.2, 0.3, 9.0, 9.0])
    used = np.array([True, True, True, False, False])
    # only the used markers: median 0.2 m -> 5 x 0.2 / 1.5382
    d = robust_threshold(e, used)
    assert isinstance(d, float)
    assert d == pytest.approx(5.0 * 0.2 / 1.5382, rel=1e-12)
    assert robust_threshold(e, used, k=2.0) == pytest.approx(2.0 * 0.2 / 1.5382, rel=1e-12)
    # the floor, ours and the default 1 cm, and exactly at it
    assert robust_threshold(e, used, min_delta=1.0) == 1.0
    assert robust_threshold(np.full(3, 0.001), np.ones(3, bool)) == 0.01
    at = np.full(3, 0.01 * 1.5382 / 5.0)
    assert robust_threshold(at, np.ones(3, bool)) == pytest.approx(0.01, rel=1e-12)
    # an even count: the median is the mean of the middle two
    assert robust_threshold(np.array([0.1, 0.3]), np.ones(2, bool)) == pytest.approx(5 * 0.2 / 1.5382)
    assert robust_threshold(e, np.zeros(5, bool)) == float("inf")
    assert ik.ROBUST_K == 5.0 and ik.ROBUST_MIN_DELTA == 0.01 and ik.ROBUST_CHI3_MEDIAN == 1.5382
    assert ik.ROBUST_LOSS == "log" and ik.ROBUST_LOSSES == {"huber": (huber_rho, huber_weight),
                                                            "log": (log_rho, log_weight)}


def test_losses_at_threshold_and_infinite_delta():
    e = np.array([0.0, 0.01, 0.04])
    # at e == delta: least squares (e^2) on both sides of the switch, weight 1
    assert huber_rho(e, 0.01).tolist() == pytest.approx([0.0, 1e-4, 0.01 * (0.08 - 0.01)])
    assert log_rho(e, 0.01).tolist() == pytest.approx([0.0, 1e-4, 1e-4 * (1 + 2 * np.log(4.0))])
    assert huber_weight(e, 0.01).tolist() == pytest.approx([1.0, 1.0, 0.25])
    assert log_weight(e, 0.01).tolist() == pytest.approx([1.0, 1.0, 1 / 16])
    # delta = inf (no used marker): plain least squares, weight 1, even for a zero error
    big = np.array([0.0, 3.0, 1e10])
    assert huber_rho(big, np.inf).tolist() == [0.0, 9.0, 1e20]
    assert log_rho(big, np.inf).tolist() == [0.0, 9.0, 1e20]
    assert huber_weight(big, np.inf).tolist() == [1.0, 1.0, 1.0]
    assert log_weight(big, np.inf).tolist() == [1.0, 1.0, 1.0]
    # very large finite delta: still the caps' least squares
    assert log_rho(np.array([2.0]), 1e200).tolist() == [4.0]
    assert huber_weight(np.array([2.0]), 1e200).tolist() == [1.0]
    # the log tail's value (no NumPy warning for the e < delta branch: log of max(e, d) / d)
    with np.errstate(all="raise"):
        assert log_rho(np.array([0.0, 0.02]), 0.01).tolist() == pytest.approx([0.0, 1e-4 * (1 + 2 * np.log(2))])
        assert log_weight(np.array([0.0]), 0.01).tolist() == [1.0]
        assert huber_weight(np.array([0.0]), 0.01).tolist() == [1.0]


# ---------------------------------------------------------------------------------------------
# error summaries and the errors CSV


def test_error_figures_by_hand():
    res = small_result()
    down = np.isfinite(res.robust_weights) & (res.robust_weights < 1.0)
    fig = error_figures(res.marker_names, res.marker_errors, res.rms, res.max, res.n_markers, down)
    assert fig["marker_rms_mean_m"] == pytest.approx((0.0212 + 0.00316 + 0.289) / 3)
    assert fig["marker_rms_max_m"] == pytest.approx(0.289)
    assert fig["marker_error_max_m"] == pytest.approx(0.5)
    assert fig["markers_used_mean"] == pytest.approx(7 / 3)
    per = fig["marker_rms_per_marker_m"]
    assert list(per) == ["A", "B", "C"]
    assert per["A"] == pytest.approx(np.sqrt((0.001 ** 2 + 0.002 ** 2 + 0.5 ** 2) / 3))
    assert per["B"] == pytest.approx(np.sqrt((0.004 ** 2 + 0.006 ** 2) / 2))
    assert per["C"] == pytest.approx(np.sqrt((0.03 ** 2 + 0.02 ** 2) / 2))
    # A down in 1 of 3 frames, B never, C in 1 of its 2 used frames; rounded to 4 places
    assert fig["downweighted_share"] == {"A": 0.3333, "B": 0.0, "C": 0.5}
    assert "downweighted_share" not in error_figures(res.marker_names, res.marker_errors, res.rms, res.max,
                                                     res.n_markers)
    # a downweighted flag where the marker was not used does not count
    flags = np.ones((3, 3), bool)
    assert error_figures(["A", "B", "C"], res.marker_errors, res.rms, res.max, res.n_markers,
                         flags)["downweighted_share"] == {"A": 1.0, "B": 1.0, "C": 1.0}


def test_error_figures_nothing_known():
    nan = np.full(2, np.nan)
    with np.errstate(all="raise"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig = error_figures(["A"], np.full((2, 1), np.nan), nan, nan, np.array([0, 1]),
                                np.ones((2, 1), bool))
    assert fig == {"marker_rms_mean_m": None, "marker_rms_max_m": None, "marker_error_max_m": None,
                   "markers_used_mean": 0.5, "marker_rms_per_marker_m": {"A": None},
                   "downweighted_share": {"A": 0.0}}


def test_write_ik_errors_text_and_pandas(tmp_path):
    res = small_result()
    path = write_ik_errors(res, tmp_path / "e.csv")
    assert path == tmp_path / "e.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:5] == [
        "# simspine IK marker errors per frame: time in seconds, errors in metres (distance between "
        "model and data marker); frame opensim-ground (Y up)",
        "# backend=jacobian-gn",
        "# robust_loss=log; k=5.0; min_delta_m=0.01",
        "time_s,rms_m,max_m,n_markers,downweighted,A_m,B_m,C_m",
        "0.000000,0.0212,0.03,2,C,0.001,,0.03",
    ]
    assert lines[5:] == ["0.020000,0.00316,0.004,2,,0.002,0.004,", "0.040000,0.289,0.5,3,A,0.5,0.006,0.02"]
    df = pd.read_csv(path, comment="#", keep_default_na=False, na_values=[""])
    assert list(df.columns) == ["time_s", "rms_m", "max_m", "n_markers", "downweighted", "A_m", "B_m", "C_m"]
    np.testing.assert_allclose(df["time_s"], res.time)
    np.testing.assert_allclose(df["rms_m"], res.rms)
    np.testing.assert_allclose(df["max_m"], res.max)
    assert df["n_markers"].tolist() == [2, 2, 3]
    np.testing.assert_allclose(df[["A_m", "B_m", "C_m"]].to_numpy(), res.marker_errors)
    back = read_ik_errors(path)
    assert back["backend"] == "jacobian-gn" and back["robust_loss"] == "log"
    assert back["k"] == "5.0" and back["min_delta_m"] == "0.01"
    assert back["marker_names"] == ["A", "B", "C"]
    np.testing.assert_allclose(back["marker_errors"], res.marker_errors)
    np.testing.assert_allclose(back["time"], res.time)
    np.testing.assert_allclose(back["rms"], res.rms)
    np.testing.assert_allclose(back["max"], res.max)
    assert back["n_markers"].tolist() == [2, 2, 3]
    assert back["downweighted"].tolist() == [[False, False, True], [False, False, False], [True, False, False]]


def test_write_ik_errors_without_robust_loss(tmp_path):
    res = small_result(robust=False)
    res.time = np.array([0.1234567, 1.0, 2.5])
    res.marker_errors[2, 0] = 1.23456789
    text = write_ik_errors(res, tmp_path / "e.csv").read_text()
    assert "robust_loss" not in text
    lines = text.splitlines()
    assert lines[1] == "# backend=jacobian-gn" and lines[2].startswith("time_s,")
    assert lines[3].split(",")[:5] == ["0.123457", "0.0212", "0.03", "2", ""]
    assert lines[5].split(",")[4:] == ["", "1.23457", "0.006", "0.02"]
    back = read_ik_errors(tmp_path / "e.csv")
    assert not back["downweighted"].any()
    assert "robust_loss" not in back


def test_read_ik_errors_variants(tmp_path):
    old = tmp_path / "old.csv"
    # a comment whose text before "=" holds ":" is prose, not an entry (also when its first word has none)
    old.write_text("# backend=opensim\n# note: a=b\n# the units: s=seconds\ntime,rms_m\n\n0.5,0.01\n1.0,\n")
    back = read_ik_errors(old)
    assert back["backend"] == "opensim" and "note: a" not in back and "the units: s" not in back
    assert [k for k in back if k not in ("time", "rms", "max", "n_markers", "marker_names", "marker_errors",
                                         "downweighted")] == ["backend"]
    assert back["time"].tolist() == [0.5, 1.0]
    assert back["rms"][0] == 0.01 and np.isnan(back["rms"][1])
    assert np.isnan(back["max"]).all() and back["max"].shape == (2,)
    assert back["n_markers"].tolist() == [0, 0] and back["n_markers"].dtype.kind == "i"
    assert back["marker_names"] == []
    assert back["marker_errors"].shape == (2, 0) and back["downweighted"].shape == (2, 0)
    assert back["downweighted"].dtype == bool
    # key = value entries are stripped; the marker suffix _m only is removed
    f = tmp_path / "f.csv"
    f.write_text("#  backend = x=y ;k=3\ntime_s,rms_m,max_m,n_markers,downweighted,A_m,Bm\n"
                 "0,1,2,3,Bm;A,4,5\n")
    back = read_ik_errors(f)
    assert back["backend"] == "x=y" and back["k"] == "3"
    assert back["marker_names"] == ["A", "Bm"]
    assert back["marker_errors"].tolist() == [[4.0, 5.0]]
    assert back["downweighted"].tolist() == [[True, True]]
    assert back["n_markers"].tolist() == [3] and back["max"].tolist() == [2.0]


def test_read_ik_errors_refusals(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("# backend=x\n\n")
    with pytest.raises(InputError) as e:
        read_ik_errors(empty)
    assert str(e.value) == f"{empty}: no header row in the IK errors file"
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,max_m\n0,1\n")
    with pytest.raises(InputError) as e:
        read_ik_errors(bad)
    assert str(e.value) == f"{bad}: not an IK errors file (no time_s/rms_m columns)"
    bad.write_text("t,rms_m\n0,1\n")
    with pytest.raises(InputError, match="no time_s/rms_m"):
        read_ik_errors(bad)


# ---------------------------------------------------------------------------------------------
# IKResult, .mot, smoothing weight, backends


def test_ikresult_accessors():
    res = small_result()
    assert res.downweighted_share() == pytest.approx({"A": 1 / 3, "B": 0.0, "C": 0.5})
    res.robust_weights[:, 1] = np.nan  # never used: 0, not 0/0
    assert res.downweighted_share()["B"] == 0.0
    assert small_result(robust=False).downweighted_share() == {}
    none = small_result()
    none.marker_names = []
    assert none.downweighted_share() == {}
    assert res.column("tx").tolist() == [0.5, -0.25, 1.0]
    assert res.column("rx").tolist() == [np.pi / 2, np.pi, -np.pi / 4]
    with pytest.raises(InputError) as e:
        res.column("ry")
    assert str(e.value) == "no coordinate 'ry' in the IK result"
    assert res.fps == 3 / 0.5
    for s in (0.0, -1.0, float("nan")):
        res.seconds = s
        assert np.isnan(res.fps)
    res = small_result()
    before = res.values.copy()
    mot = res.values_for_mot()
    np.testing.assert_allclose(mot, [[90.0, 0.5], [180.0, -0.25], [-45.0, 1.0]], rtol=1e-12)
    assert np.array_equal(res.values, before)  # a copy
    fresh = IKResult(np.zeros(1), ["a"], np.zeros((1, 1)), np.array([True]), [], np.zeros((1, 0)),
                     np.zeros(1), np.zeros(1), np.zeros(1, int))
    assert fresh.backend == "" and np.isnan(fresh.seconds) and fresh.meta == {}
    assert fresh.robust_weights is None and fresh.robust_delta is None


def test_write_ik_mot_read_by_opensim(tmp_path):
    import opensim as osim

    res = small_result()
    p = write_ik_mot(res, tmp_path / "a.mot", fingerprint="abc123")
    assert p == tmp_path / "a.mot"
    table = osim.TimeSeriesTable(str(p))
    assert list(table.getColumnLabels()) == ["rx", "tx"]
    assert list(table.getIndependentColumn()) == pytest.approx([0.0, 0.02, 0.04])
    got = np.array([[table.getRowAtIndex(i)[j] for j in range(2)] for i in range(3)])
    np.testing.assert_allclose(got, [[90.0, 0.5], [180.0, -0.25], [-45.0, 1.0]], rtol=1e-11)
    assert table.getTableMetaDataAsString("inDegrees") == "yes"
    assert table.getTableMetaDataAsString("simspine_input") == "abc123"
    assert table.getTableMetaDataAsString("frame") == "opensim-ground (Y up)"
    lines = p.read_text().splitlines()
    assert lines[0] == "simspine_ik"
    end = lines.index("endheader")
    assert lines[end - 3:end] == ["simspine inverse kinematics (jacobian-gn)",
                                  "rotations in degrees, translations in metres", ""]
    q = write_ik_mot(res, tmp_path / "b.mot")
    assert "simspine_input" not in q.read_text()
    assert "simspine_input" not in write_ik_mot(res, tmp_path / "c.mot", fingerprint="").read_text()


def test_smoothness_for_rate():
    assert smoothness_for_rate(0.1, 50.0) == pytest.approx(0.1, rel=1e-15)
    assert smoothness_for_rate(0.1, 100.0) == pytest.approx(1.6, rel=1e-12)
    assert smoothness_for_rate(0.1, 10.0) == pytest.approx(0.1 / 625, rel=1e-12)
    assert smoothness_for_rate(2.0, 25.0) == pytest.approx(2.0 / 16, rel=1e-12)
    assert isinstance(smoothness_for_rate(1, 50), float)
    for bad in (float("nan"), float("inf"), 0.0, -50.0):
        assert smoothness_for_rate(0.3, bad) == 0.3


def test_make_backend():
    b = make_backend()
    assert type(b) is JacobianIK and b.accuracy == 1e-6 and b.smoothness == 0.0
    b = make_backend("jacobian", accuracy=1e-3, smoothness=0.5)
    assert type(b) is JacobianIK and b.accuracy == 1e-3 and b.smoothness == 0.5
    b = make_backend("opensim", accuracy=1e-4)
    assert type(b) is OpenSimSolverIK and b.accuracy == 1e-4
    assert make_backend("opensim").accuracy == 1e-5
    assert type(make_backend("opensim", smoothness=0.0)) is OpenSimSolverIK
    with pytest.raises(InputError) as e:
        make_backend("opensim", smoothness=0.1)
    assert str(e.value) == "the opensim IK backend has no temporal smoothness term (use jacobian or batched)"
    with pytest.raises(InputError) as e:
        make_backend("nope")
    assert str(e.value) == "unknown IK backend 'nope' (known: jacobian, opensim, batched)"
    assert ik.SMOOTHING_BACKENDS == ("jacobian", "batched")


# ---------------------------------------------------------------------------------------------
# fingerprint and resumption


def trajectories(T=4, names=("A", "B")):
    rng = np.random.default_rng(1)
    return Trajectories(np.arange(T) / 50.0, list(names), rng.normal(size=(T, len(names), 3)),
                        rng.uniform(size=(T, len(names))))


def fingerprint_by_hand(model_bytes, m, backend="jacobian", accuracy=None, weights=None, tasks=None,
                        robust=("log", 5.0, 0.01), damping=(1e-3, 1e-3), chains=None):
    h = hashlib.sha256()
    h.update(json.dumps({"names": list(m.names), "frame": m.frame, "shape": list(m.xyz.shape)}).encode())
    for a in (m.time, m.xyz, m.conf):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    h.update(hashlib.sha256(model_bytes).hexdigest().encode())
    opts = {"accuracy": accuracy, "backend": backend, "coordinate_task_scale": 0.01,
            "coordinate_tasks": tasks, "robust": list(robust) if robust else None, "weights": weights,
            "damping": list(damping), "chains": chains}
    h.update(json.dumps(opts, sort_keys=True).encode())
    return h.hexdigest()


def test_job_fingerprint_definition(tmp_path):
    model = tmp_path / "m.osim"
    model.write_bytes(b"<OpenSimDocument/>")
    m = trajectories()
    fp = job_fingerprint(IKJob(str(model), m))
    assert fp == fingerprint_by_hand(b"<OpenSimDocument/>", m)
    tasks = [{"name": "L5_S1_Flex_Ext", "weight": 0.01}]
    job = IKJob(str(model), m, weights={"A": 2.0}, coordinate_tasks=tasks, backend="opensim", accuracy=1e-4)
    assert job_fingerprint(job) == fingerprint_by_hand(b"<OpenSimDocument/>", m, "opensim", 1e-4, {"A": 2.0},
                                                       tasks, robust=None)
    # the batched backend's chains (by name: 25 frames) are part of it
    job = IKJob(str(model), m, backend="batched")
    assert job_fingerprint(job) == fingerprint_by_hand(b"<OpenSimDocument/>", m, "batched", robust=None, chains=25)
    # options that JSON cannot hold are hashed by their repr (taken here, not spelled out: Pose2Sim's
    # modules set numpy's legacy print options when imported, and then repr gives "2.0")
    odd = IKJob(str(model), m, weights={"A": np.float32(2.0)})
    assert job_fingerprint(odd) == fingerprint_by_hand(b"<OpenSimDocument/>", m, weights={"A": repr(np.float32(2.0))})
    # each input changes it
    seen = {fp}
    for change in (dict(markers=trajectories(T=5)), dict(markers=trajectories(names=("A", "C"))),
                   dict(backend="batched"), dict(accuracy=1e-3), dict(weights={"A": 1.0})):
        fpc = job_fingerprint(IKJob(**{"model_path": str(model), "markers": m, **change}))
        assert fpc not in seen
        seen.add(fpc)
    # the model digest cache: a digest given is used (the file is not read), one computed is stored
    cache = {str(model): "0" * 64}
    assert job_fingerprint(IKJob(str(model), m), cache) != fp
    cache = {}
    assert job_fingerprint(IKJob(str(model), m), cache) == fp
    assert cache == {str(model): hashlib.sha256(b"<OpenSimDocument/>").hexdigest()}
    missing = tmp_path / "none.osim"
    with pytest.raises(InputError) as e:
        job_fingerprint(IKJob(str(missing), m))
    assert str(e.value) == f"{missing}: cannot read the model: No such file or directory"


def test_job_fingerprint_robust_defaults_jacobian_only(tmp_path, monkeypatch):
    model = tmp_path / "m.osim"
    model.write_bytes(b"x")
    m = trajectories()
    jac, osm = job_fingerprint(IKJob(str(model), m)), job_fingerprint(IKJob(str(model), m, backend="opensim"))
    monkeypatch.setattr(ik, "ROBUST_K", 4.0)
    assert job_fingerprint(IKJob(str(model), m)) != jac
    assert job_fingerprint(IKJob(str(model), m, backend="opensim")) == osm
    monkeypatch.setattr(ik, "COORDINATE_TASK_SCALE", 0.1)
    assert job_fingerprint(IKJob(str(model), m, backend="opensim")) != osm


def model_result(coords, time):
    T, C = len(time), len(coords)
    rot = np.array([c.rotational for c in coords])
    values = np.linspace(-0.5, 0.5, T * C).reshape(T, C)
    return IKResult(np.asarray(time, float), [c.name for c in coords], values, rot, ["A"], np.zeros((T, 1)),
                    np.zeros(T), np.zeros(T), np.ones(T, int), "jacobian-gn")


def test_finished_result_resumes(model_path, coords, tmp_path):
    m = trajectories()
    out = tmp_path / "t.mot"
    job = IKJob(model_path, m, out_mot=str(out))
    res = model_result(coords, m.time)
    write_ik_mot(res, out, fingerprint=job_fingerprint(job))
    cache = {}
    back = finished_result(job, cache)
    assert back is not None
    assert back.coordinate_names == res.coordinate_names
    np.testing.assert_allclose(back.values, res.values, rtol=0, atol=1e-11)
    np.testing.assert_allclose(back.time, m.time)
    assert back.rotational.tolist() == res.rotational.tolist()
    assert back.marker_names == [] and back.marker_errors.shape == (4, 0)
    assert np.isnan(back.rms).all() and np.isnan(back.max).all() and back.rms.shape == (4,)
    assert back.n_markers.tolist() == [0, 0, 0, 0]
    assert back.backend == "jacobian" and np.isnan(back.seconds)
    assert back.meta == {"resumed_from": str(out)}
    assert model_path in cache and "_model_digests" in cache
    # times within the tolerance (1e-9 s + 1e-11 x the largest time) still match
    near = Trajectories(m.time + 5e-10, m.names, m.xyz, m.conf)
    job2 = IKJob(model_path, near, out_mot=str(out))
    write_ik_mot(res, out, fingerprint=job_fingerprint(job2))
    assert finished_result(job2) is not None
    far = Trajectories(m.time + 2e-9, m.names, m.xyz, m.conf)
    job3 = IKJob(model_path, far, out_mot=str(out))
    write_ik_mot(res, out, fingerprint=job_fingerprint(job3))
    assert finished_result(job3) is None
    # a file in radians (inDegrees=no) is taken as it is
    from simspine.io.mot import write_mot

    write_mot(out, m.time, res.coordinate_names, res.values, in_degrees=False, name="simspine_ik",
              meta={"simspine_input": job_fingerprint(job)})
    np.testing.assert_allclose(finished_result(job).values, res.values, rtol=0, atol=1e-11)


def test_finished_result_solves_again(model_path, coords, tmp_path):
    m = trajectories()
    out = tmp_path / "t.mot"
    job = IKJob(model_path, m, out_mot=str(out))
    res = model_result(coords, m.time)
    assert finished_result(IKJob(model_path, m)) is None  # no output file asked for
    assert finished_result(job) is None  # not written yet
    out.mkdir()
    assert finished_result(job) is None  # a folder
    out.rmdir()
    out.write_text("not a mot file\n")
    assert finished_result(job) is None
    write_ik_mot(res, out)  # no fingerprint
    assert finished_result(job) is None
    write_ik_mot(res, out, fingerprint="0" * 64)
    assert finished_result(job) is None
    fp = job_fingerprint(job)
    # another table name, other times, other coordinates
    from simspine.io.mot import write_mot

    write_mot(out, m.time, res.coordinate_names, res.values_for_mot(), name="other",
              meta={"simspine_input": fp})
    assert finished_result(job) is None
    write_ik_mot(model_result(coords, m.time[:3]), out, fingerprint=fp)
    assert finished_result(job) is None
    swapped = model_result(coords, m.time)
    swapped.coordinate_names = swapped.coordinate_names[::-1]
    write_ik_mot(swapped, out, fingerprint=fp)
    assert finished_result(job) is None
    write_ik_mot(res, out, fingerprint=fp)
    assert finished_result(job) is not None
    # the model file gone: solved again (the error is raised by the solve, not here)
    gone = IKJob(str(tmp_path / "gone.osim"), m, out_mot=str(out))
    assert finished_result(gone) is None


def test_edges_left_by_the_first_run(model_path, coords, tmp_path):
    # a marker used in one frame only, down-weighted there: share 1, not 1/2; a non-square (T, M)
    res = small_result()
    res.robust_weights = np.array([[0.5, np.nan], [np.nan, 1.0], [np.nan, 1.0]])
    res.marker_names = ["A", "B"]
    assert res.downweighted_share() == {"A": 1.0, "B": 0.0}
    err = np.where(np.isfinite(res.robust_weights), 0.01, np.nan)
    fig = error_figures(["A", "B"], err, res.rms, res.max, res.n_markers, res.robust_weights < 1.0)
    assert fig["downweighted_share"] == {"A": 1.0, "B": 0.0}
    # two markers down in one frame: ";"-separated
    res = small_result()
    res.robust_weights = np.full((3, 3), 0.5)
    assert write_ik_errors(res, tmp_path / "e.csv").read_text().splitlines()[4].split(",")[4] == "A;B;C"
    # entries without a space after "#", values holding ":"
    f = tmp_path / "f.csv"
    f.write_text("#backend=x\n# when=12:30\ntime_s,rms_m\n0,1\n")
    back = read_ik_errors(f)
    assert back["backend"] == "x" and back["when"] == "12:30"
    # the smoothing weight below 1 Hz still scales
    assert smoothness_for_rate(0.1, 1.0) == pytest.approx(0.1 / 50 ** 4, rel=1e-12)
    assert smoothness_for_rate(0.1, 0.5) == pytest.approx(0.1 / 100 ** 4, rel=1e-12)
    # resumption: the times' tolerance is 1e-9 s + 1e-11 x the largest time, absolute only
    base = Trajectories(100.0 + np.arange(4) / 50.0, ["A", "B"], np.zeros((4, 2, 3)))
    out = tmp_path / "t.mot"
    for shift, found in ((1.5e-9, True), (2.5e-9, False)):
        markers = Trajectories(base.time + shift, base.names, base.xyz)
        job = IKJob(model_path, markers, out_mot=str(out))
        write_ik_mot(model_result(coords, base.time), out, fingerprint=job_fingerprint(job))
        assert (finished_result(job) is not None) == found
    short = Trajectories(np.arange(4) / 50.0, ["A", "B"], np.zeros((4, 2, 3)))
    job = IKJob(model_path, Trajectories(short.time + 1.005e-9, short.names, short.xyz), out_mot=str(out))
    write_ik_mot(model_result(coords, short.time), out, fingerprint=job_fingerprint(job))
    assert finished_result(job) is None
    job = IKJob(model_path, short, out_mot=str(out))
    write_ik_mot(model_result(coords, short.time), out, fingerprint=job_fingerprint(job))
    cache = {}
    back = finished_result(job, cache)
    assert back.n_markers.dtype.kind == "i"
    assert cache["_model_digests"] == {model_path: hashlib.sha256(open(model_path, "rb").read()).hexdigest()}


def test_finished_result_reads_the_jobs_model(model_path, tmp_path):
    # a model whose coordinates differ from the default prepared model's (one renamed everywhere)
    other = tmp_path / "renamed.osim"
    other.write_text(open(model_path).read().replace("pelvis_tilt", "pelvis_tilt_renamed"))
    coords = coordinate_info(load_model(other))
    assert "pelvis_tilt_renamed" in [c.name for c in coords]
    m = trajectories()
    out = tmp_path / "t.mot"
    job = IKJob(str(other), m, out_mot=str(out))
    write_ik_mot(model_result(coords, m.time), out, fingerprint=job_fingerprint(job))
    assert finished_result(job).coordinate_names[0] == "pelvis_tilt_renamed"


def test_finished_result_zero_frames(model_path, coords, tmp_path):
    m = Trajectories(np.zeros(0), ["A"], np.zeros((0, 1, 3)))
    out = tmp_path / "t.mot"
    job = IKJob(model_path, m, out_mot=str(out))
    write_ik_mot(model_result(coords, m.time), out, fingerprint=job_fingerprint(job))
    back = finished_result(job)
    assert back.values.shape == (0, len(coords)) and back.n_markers.shape == (0,)
