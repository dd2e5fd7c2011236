"""2D spine detections from a data_2d_*.npz-style file in the build, observation status in the store,
the IK backend option (recorded in provenance)."""

from __future__ import annotations

import numpy as np
import pytest

from simspine.calibration import h36m_cameras
from simspine.dataset.build import build_dataset
from simspine.dataset.h36m import find_sequences
from simspine.dataset.sequence import SequenceOptions
from simspine.dataset.spine2d_npz import load_spine_2d_npz, write_spine_2d_npz
from simspine.dataset.store import Store
from simspine.dataset.synthetic import write_mini_h36m
from simspine.errors import InputError
from simspine.frames import yup_to_zup
from simspine.observation import FILLED, INFERRED, OBSERVED, region_status
from simspine.skeletons import spinetrack37

GAP = slice(8, 12)  # frames where the lumbar keypoints are missing in every camera
LUMBAR = ("Spine_01", "Spine_02", "Spine_03")


def _projections(kp_yup, cams, conf: bool = True) -> list[np.ndarray]:
    """Exact projections per camera, (T, 37, 3) with confidence 1 (NaN and 0 outside the image)."""
    out = []
    for cam in cams:
        uv = cam.project(yup_to_zup(kp_yup))
        w, h = cam.size
        ok = np.isfinite(uv).all(-1) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
        uv = np.where(ok[..., None], uv, np.nan)
        out.append(np.concatenate([uv, ok[..., None].astype(float)], -1) if conf else uv)
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("npz2d")
    truth = write_mini_h36m(root / "h36m", subjects=("S1",), actions=("Walking 1", "Eating", "Phoning"),
                            frames=20, seed=4)
    cams = h36m_cameras("S1")
    walk = _projections(truth["S1/Walking_1"]["keypoints"], cams)
    lumbar = spinetrack37().indices(list(LUMBAR))
    for a in walk:
        a[GAP, lumbar] = np.nan  # nobody saw the lumbar spine for 4 frames
    eat = [a[:, :36] for a in _projections(truth["S1/Eating"]["keypoints"], cams)]  # a 36-keypoint detector
    phone = [a[:15] for a in _projections(truth["S1/Phoning"]["keypoints"], cams, conf=False)]  # 15 of 20 frames
    npz = write_spine_2d_npz(root / "data_2d_h36m_spine.npz",
                             {"S1": {"Walking 1": walk, "Eating": eat, "Phoning": phone}},
                             {"layout_name": "spinetrack37"})
    return root, truth, npz


def test_npz_reader_matches_the_arrays_and_names_its_errors(tree):
    root, truth, npz = tree
    specs = {s.name: s for s in find_sequences(root / "h36m").sequences}
    cams = h36m_cameras("S1")
    ses = load_spine_2d_npz(npz, specs["Walking_1"], cams, 20)
    assert [c.name for c in ses.cameras] == [c.name for c in cams]
    assert ses.keypoints.shape == (4, 20, 37, 2) and ses.conf.shape == (4, 20, 37)
    k = spinetrack37().index("LWrist")
    exact = cams[2].project(yup_to_zup(truth["S1/Walking_1"]["keypoints"][:, k]))
    np.testing.assert_allclose(ses.keypoints[2, :, k], exact, atol=1e-9)
    lumbar = spinetrack37().indices(list(LUMBAR))
    assert np.all(ses.conf[:, GAP][..., lumbar] == 0) and np.isnan(ses.keypoints[:, GAP][..., lumbar, :]).all()
    with pytest.raises(InputError, match="36 keypoints per frame, expected 37"):
        load_spine_2d_npz(npz, specs["Eating"], cams, 20)
    with pytest.raises(InputError, match="cover 15 frames .* have 20"):
        load_spine_2d_npz(npz, specs["Phoning"], cams, 20)
    with pytest.raises(InputError, match="4 camera arrays for 2 cameras"):
        load_spine_2d_npz(npz, specs["Walking_1"], cams[:2], 20)  # names default to the 2 cameras given
    other = write_spine_2d_npz(root / "other.npz", {"S5": {}})
    assert load_spine_2d_npz(other, specs["Walking_1"], cams, 20) is None  # nothing for S1: no 2D


def test_build_from_npz_status_and_ik_backend(tree, capsys):
    root, truth, npz = tree
    out = root / "simspine.h5"
    with pytest.raises(InputError, match="unknown IK backend 'nope'"):
        build_dataset(root / "h36m", out, spine_2d=npz, options=SequenceOptions(ik_backend="nope"), progress=False)
    s = build_dataset(root / "h36m", out, spine_2d=npz, workers=1, progress=False,
                      options=SequenceOptions(scaling_refine=1, scaling_frames=10, ik_backend="jacobian"))
    assert s.built == ["S1/Walking_1"]
    assert "36 keypoints per frame, expected 37" in s.failed["S1/Eating"]
    assert "data_2d_h36m_spine.npz" in s.failed["S1/Eating"]
    assert "cover 15 frames" in s.failed["S1/Phoning"] and "have 20" in s.failed["S1/Phoning"]
    assert "S1/Phoning" in s.text() and "\n" not in s.failed["S1/Phoning"]  # one line, no traceback

    with Store(out) as st:
        assert st.provenance["ik_backend"] == "jacobian"
        assert st.provenance["options"]["ik_backend"] == "jacobian"
        seq = st.sequence("S1", "Walking_1")
        assert seq.attrs["meta"]["spine_2d"] and seq.attrs["meta"]["ik_backend"] == "jacobian"
        err = np.linalg.norm(seq.keypoints37 - truth["S1/Walking_1"]["keypoints"], axis=-1) * 1000
        assert np.median(err) < 10.0, np.median(err)
        # observation status read back: lumbar filled over the gap, observed elsewhere; all 37 seen
        sk = spinetrack37()
        status, reg = seq.status, seq.region_status
        assert status.shape == (20, 37) and reg.shape == (20, 3)
        lumbar = sk.indices(list(LUMBAR))
        assert np.all(status[GAP][:, lumbar] == FILLED)
        rest = np.ones(20, bool)
        rest[GAP] = False
        assert np.all(status[rest] == OBSERVED)
        assert not np.any(status == INFERRED)
        np.testing.assert_array_equal(reg, region_status(status))
        assert seq.observed_share() == pytest.approx({"lumbar": 16 / 20, "thoracic": 1.0, "cervical": 1.0})
        assert seq.attrs["meta"]["observed_share"]["lumbar"] == pytest.approx(16 / 20)

    from simspine.cli import main

    assert main(["dataset", "info", str(out)]) == 0
    assert "IK backend: jacobian" in capsys.readouterr().out
    assert main(["dataset", "validate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "spine observed (share of frames, region_status): lumbar 80.0%, thoracic 100.0%" in text
    # a corrupted status is a problem
    import h5py

    with h5py.File(out, "r+") as f:
        f["S1/Walking_1/status"][0, 0] = 7
        f["S1/Walking_1/region_status"][5, 1] = FILLED
    assert main(["dataset", "validate", str(out)]) == 1
    text = capsys.readouterr().out
    assert "S1/Walking_1/status: 1 codes outside 0-3" in text
    with h5py.File(out, "r+") as f:
        f["S1/Walking_1/status"][0, 0] = OBSERVED
    assert main(["dataset", "validate", str(out)]) == 1
    assert "S1/Walking_1/region_status: 1 frames disagree" in capsys.readouterr().out


@pytest.mark.slow
def test_opensim_backend_on_a_built_model(tree):
    """The same sequence through OpenSim's IK solver (no smoothness term) on the scaled model."""
    from simspine.dataset.sequence import process_sequence, scale_subject_model

    root, truth, npz = tree
    spec = next(s for s in find_sequences(root / "h36m").sequences if s.name == "Walking_1")
    model = root / "simspine.h5.work" / "S1" / "model" / "model_scaled.osim"
    if not model.is_file():  # run alone: scale here
        model = scale_subject_model("S1", [spec], root / "model", SequenceOptions(scaling_refine=1))["model"]
    res = process_sequence(spec, str(model), SequenceOptions(spine_2d=str(npz), ik_backend="opensim"))
    assert res["meta"]["ik_backend"] == "opensim"
    err = np.linalg.norm(res["keypoints37"] - truth["S1/Walking_1"]["keypoints"], axis=-1) * 1000
    assert np.median(err) < 15.0, np.median(err)
