"""End to end: a miniature Human3.6M tree with known truth, built on 2 Dask workers, resumed,
validated and exported (COCO read by pycocotools' evaluator)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from simspine.dataset.build import build_dataset
from simspine.dataset.h36m import D3_DIR, write_cdf_pose
from simspine.dataset.sequence import SequenceOptions
from simspine.dataset.store import Store
from simspine.dataset.synthetic import write_mini_h36m


def _errors_mm(store, truth):
    out = {}
    with Store(store) as st:
        for q in st.iter_sequences():
            out[f"{q.subject}/{q.name}"] = np.linalg.norm(q.keypoints37 - truth[f"{q.subject}/{q.name}"]["keypoints"],
                                                          axis=-1) * 1000
    return out


def test_build_resume_failures_validate_export(tmp_path, capsys):
    h36m, det = tmp_path / "h36m", tmp_path / "2d"
    truth = write_mini_h36m(h36m, subjects=("S1",), actions=("Walking 1", "SittingDown"), frames=50, seed=3,
                            spine_2d=det)
    d3 = h36m.joinpath("S1", *D3_DIR)
    # a truncated CDF
    good = d3 / "Walking 1.cdf"
    (d3 / "Eating.cdf").write_bytes(good.read_bytes()[:300])
    # 2D of another length than 3D: Phoning has Walking's 50 3D frames but 40 2D frames per camera
    shutil.copy(good, d3 / "Phoning.cdf")
    for cam in (det / "S1" / "Walking_1" / "pose").iterdir():
        dst = det / "S1" / "Phoning" / "pose" / cam.name
        dst.mkdir(parents=True)
        for f in sorted(cam.glob("*.json"))[:40]:
            shutil.copy(f, dst / f.name)
    out = tmp_path / "simspine.h5"
    opts = SequenceOptions(scaling_refine=1)
    s1 = build_dataset(h36m, out, spine_2d=det, subjects=["S1", "S5"], workers=2, options=opts, progress=False)
    assert sorted(s1.built) == ["S1/SittingDown", "S1/Walking_1"]
    assert set(s1.failed) == {"S1/Eating", "S1/Phoning", "S5"}
    assert "Eating.cdf" in s1.failed["S1/Eating"] and "truncated" in s1.failed["S1/Eating"]
    assert "40 frames" in s1.failed["S1/Phoning"] and "50" in s1.failed["S1/Phoning"]
    assert "subject folder not found" in s1.failed["S5"]
    assert s1.workers == 2

    # the 37 keypoints against the truth (exact 2D projections + the Human3.6M limbs)
    err = _errors_mm(out, truth)
    for uid, e in err.items():
        assert e.mean() < 15.0, (uid, e.mean())
        assert np.median(e) < 10.0, (uid, np.median(e))

    # fix the broken CDF and build again: only Eating is computed, the rest is taken from the work folder
    write_cdf_pose(d3 / "Eating.cdf", np.asarray(Store(out).sequence("S1", "Walking_1").extras["h36m_joints_mm"]))
    s2 = build_dataset(h36m, out, spine_2d=det, subjects=["S1"], workers=2, options=opts, progress=False)
    assert s2.built == ["S1/Eating"]
    assert sorted(s2.skipped) == ["S1/SittingDown", "S1/Walking_1"]
    assert set(s2.failed) == {"S1/Phoning"}
    with Store(out) as st:
        assert st.sequences("S1") == ["Eating", "SittingDown", "Walking_1"]
        seq = st.sequence("S1", "Walking_1")
        assert seq.markers.shape == (50, 15, 3) and seq.kinematics.shape == (50, 62)
        assert seq.keypoints2d.shape == (4, 50, 37, 3) and seq.boxes.shape == (4, 50, 4)
        np.testing.assert_allclose(seq.timestamps[:3], [0.0, 0.02, 0.04])
        assert st.calibration("S1")[0].dist_model == "opencv"
        assert "<OpenSimDocument" in st.model_xml("S1")
        assert st.provenance["versions"]["dask"]

    from simspine.cli import main

    assert main(["dataset", "validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out

    # COCO export read by the COCO evaluator: the ground truth scored against itself gives AP 1
    assert main(["dataset", "export", str(out), "--format", "coco", "--out", str(tmp_path / "coco")]) == 0
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path = tmp_path / "coco" / "train.json"
    data = json.loads(gt_path.read_text())
    cat = data["categories"][0]
    assert len(cat["keypoints"]) == 37 and len(cat["sigmas"]) == 37
    assert len(data["images"]) == len(data["annotations"]) == 3 * 4 * 50
    gt = COCO(str(gt_path))
    dets = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in data["annotations"]]
    ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
    ev.params.kpt_oks_sigmas = np.array(cat["sigmas"])
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)

    # lifting npz and the release folders
    assert main(["dataset", "export", str(out), "--format", "lift-npz", "--out", str(tmp_path / "lift")]) == 0
    z = np.load(tmp_path / "lift" / "train.npz")
    n = len(z["imgname"])
    assert n == 3 * 4 * 50 and z["part"].shape == (n, 37, 3) and z["S"].shape == (n, 37, 4)
    assert z["S_world"].shape == (n, 37, 3) and z["angles"].shape == (n, 62)
    box = np.array(data["annotations"][0]["bbox"])
    assert z["scale"][0] == pytest.approx(1.2 * box[2:].max() / 200)
    assert np.all(z["S"][..., 2] > 0)  # in front of the cameras
    assert main(["dataset", "export", str(out), "--format", "release", "--out", str(tmp_path / "rel")]) == 0
    rel = tmp_path / "rel"
    for p in ("cameras/Calib_S1.toml", "models/S1.osim", "positions/S1/S1_Walking_1.trc",
              "kinematics/S1/S1_Walking_1/S1_Walking_1.mot"):
        assert (rel / p).is_file(), p
    from simspine.calibration import read_calibration_toml

    assert len(read_calibration_toml(rel / "cameras" / "Calib_S1.toml")) == 4


@pytest.mark.slow
def test_build_two_subjects_from_markers_only(tmp_path):
    """2 subjects x 2 actions x 100 frames, Human3.6M limbs only (the spine inferred by the model)."""
    h36m = tmp_path / "h36m"
    truth = write_mini_h36m(h36m, subjects=("S1", "S9"), actions=("Walking 1", "Purchases"), frames=100, seed=5)
    out = tmp_path / "simspine.h5"
    s = build_dataset(h36m, out, workers=2, options=SequenceOptions(scaling_refine=2), progress=False)
    assert not s.failed and len(s.built) == 4
    from simspine.skeletons import H36M_TO_SPINETRACK, spinetrack37

    limbs = spinetrack37().indices(list(H36M_TO_SPINETRACK.values()))
    for uid, e in _errors_mm(out, truth).items():
        assert e[:, limbs].mean() < 5.0, uid  # the observed limb joints (measured 0.4-1.3 mm)
        assert e.mean() < 20.0, uid  # all 37 from 12 limb joints (measured 3.5-7.0 mm)
    with Store(out) as st:
        assert st.f["S9"].attrs["split"] == "test"
