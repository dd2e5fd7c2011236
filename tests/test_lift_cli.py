"""simspine train lift / bench lift on a miniature store (S1 train, S9 test) of one moving body."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _lift_store(path, T=150):
    """S1 and S9 perform the same body's motions (shape modes, turning, walking about the stage)."""
    from scipy.spatial.transform import Rotation

    from simspine.calibration import h36m_cameras
    from simspine.dataset.release import marker_indices
    from simspine.dataset.sequence import project_keypoints
    from simspine.dataset.store import write_store
    from simspine.frames import zup_to_yup
    from simspine.synth.rig import h36m_rig

    rng = np.random.default_rng(0)
    base = rng.normal(scale=0.12, size=(37, 3)) * np.array([1, 3, 1]) + np.array([0, 0.9, 0])
    modes = rng.normal(scale=0.05, size=(3, 37, 3))
    subjects, results = {}, []
    for s in ("S1", "S9"):
        cams = h36m_cameras(s)
        stage = zup_to_yup(h36m_rig(s).stage_zup)
        subjects[s] = {"cameras": cams, "model_xml": None, "scaling": None}
        for name in ("Walking_1", "Sitting"):
            w = rng.normal(size=(T, 3))
            pose = base + np.einsum("tm,mkd->tkd", w, modes)
            R = Rotation.from_euler("y", rng.uniform(-np.pi, np.pi, (T, 1))).as_matrix()
            kp = np.einsum("tij,tkj->tki", R, pose) + stage + np.c_[rng.uniform(-0.8, 0.8, T), np.zeros(T),
                                                                    rng.uniform(-0.8, 0.8, T)][:, None]
            uvv, boxes = project_keypoints(kp, cams)
            results.append({"markers": kp[:, marker_indices()], "kinematics": np.zeros((T, 62)), "keypoints37": kp,
                            "timestamps": np.arange(T) / 50.0, "keypoints2d": uvv, "boxes": boxes,
                            "meta": {"subject": s, "sequence": name, "action": name.split("_")[0], "subaction": "",
                                     "original_name": name, "rate_hz": 50.0}})
    write_store(path, subjects, results, {})


def test_train_and_bench_lift_cli(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from simspine.cli import main

    _lift_store(tmp_path / "l.h5")
    opts = ["--dataset", str(tmp_path / "l.h5"), "--rate-hz", "50", "--epochs", "6", "--hidden", "64",
            "--dropout", "0.1", "--batch-size", "64", "--lr", "3e-3", "--threads", "1"]
    assert main(["train", "lift", *opts, "--out", str(tmp_path / "ck")]) == 0
    out = capsys.readouterr().out
    for v in ("spine", "full"):
        assert (tmp_path / "ck" / f"lift_{v}_gt.pt").is_file() and (tmp_path / "ck" / f"lift_{v}_gt.onnx").is_file()
    assert "onnxruntime vs torch" in out and "1200 samples" in out  # 2 sequences x 150 frames x 4 cameras
    assert main(["bench", "lift", *opts, "--checkpoints", str(tmp_path / "ck" / "lift_spine_gt.pt"),
                 str(tmp_path / "ck" / "lift_full_gt.pt"), "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "Tab. 5 layout" in out and "Tab. 6 layout" in out and "Full-Body | GT" in out and "Walking" in out
    r = json.loads((tmp_path / "b.json").read_text())
    full = r["rows"]["Full-Body | GT"]["p_mpjpe"]["Mean"]["spine"]
    spine = r["rows"]["Spine Only | GT"]["p_mpjpe"]["Mean"]["spine"]
    mean = r["mean_pose"]["Mean pose | GT"]["p_mpjpe"]["Mean"]["spine"]
    rr_full = r["rows"]["Full-Body | GT"]["rr_mpjpe"]["Mean"]["spine"]
    rr_mean = r["mean_pose"]["Mean pose | GT"]["rr_mpjpe"]["Mean"]["spine"]
    print(full, spine, mean, rr_full, rr_mean)
    assert rr_full < 0.6 * rr_mean and full < mean
    assert spine < mean
