"""simspine bench multiview on a miniature store written from made-up motion (no Human3.6M here)."""

from __future__ import annotations

import json

import numpy as np


def _mini_store(path, det_root=None, noise_px=0.0, T=12):
    """A store with subject S9 (test split), two actions, a moving 37-point body near the stage;
    the 2D are the exact projections (as the dataset builder writes them). With ``det_root``,
    OpenPose JSON detections (projections + ``noise_px`` Gaussian noise) are written there."""
    from simspine.calibration import h36m_cameras
    from simspine.dataset.release import marker_indices
    from simspine.dataset.sequence import project_keypoints
    from simspine.dataset.store import write_store
    from simspine.frames import zup_to_yup
    from simspine.io.openpose import write_openpose_folder
    from simspine.synth.rig import h36m_rig

    rng = np.random.default_rng(0)
    stage = zup_to_yup(h36m_rig("S9").stage_zup)
    cams = h36m_cameras("S9")
    results, truth = [], {}
    for name, action in (("Walking_1", "Walking"), ("SittingDown", "SittingDown")):
        body = rng.uniform(-0.25, 0.25, (1, 37, 3)) + np.array([0, 1.0, 0])
        t = np.arange(T)[:, None, None] / 50.0
        kp = stage + body + 0.3 * np.sin(t + rng.uniform(0, 6, (1, 37, 3))) * np.array([1, 0.2, 1])
        uvv, boxes = project_keypoints(kp, cams)
        results.append({"markers": kp[:, marker_indices()], "kinematics": np.zeros((T, 62)), "keypoints37": kp,
                        "timestamps": np.arange(T) / 50.0, "keypoints2d": uvv, "boxes": boxes,
                        "meta": {"subject": "S9", "sequence": name, "action": action, "subaction": "",
                                 "original_name": name.replace("_", " "), "rate_hz": 50.0}})
        truth[name] = kp
        if det_root is not None:
            for i, c in enumerate(cams):
                uv = uvv[i, ..., :2] + rng.normal(scale=noise_px, size=uvv[i, ..., :2].shape)
                write_openpose_folder(det_root / "S9" / name / "pose" / f"{c.name}_json", uv, uvv[i, ..., 2],
                                      prefix=c.name)
    write_store(path, {"S9": {"cameras": cams, "model_xml": None, "scaling": None}}, results, {})
    return truth


def test_oracle_is_zero_and_detections_cost_millimetres(tmp_path, capsys):
    from simspine.bench.multiview import evaluate
    from simspine.cli import main

    _mini_store(tmp_path / "m.h5", det_root=tmp_path / "det", noise_px=2.0)
    r = evaluate(tmp_path / "m.h5", tmp_path / "det")
    o = r["methods"]["Oracle (GT 2D)"]
    assert r["frames"] == 24 and sorted(r["sequences"]) == ["S9/SittingDown", "S9/Walking_1"]
    for metric in ("mpjpe", "p_mpjpe"):
        for action, row in o[metric].items():
            for region, v in row.items():
                assert 0 <= v < 0.1, (metric, action, region, v)  # within 0.1 mm of zero
    assert o["missing"]["Mean"] == 0
    d = r["methods"]["Detected 2D"]
    assert 0.5 < d["mpjpe"]["Mean"]["all"] < 20  # 2 px noise at ~4-6 m: a few mm
    assert d["p_mpjpe"]["Mean"]["all"] <= d["mpjpe"]["Mean"]["all"]
    assert set(d["mpjpe"]) == {"Walking", "SittingDown", "Mean"}

    assert main(["bench", "multiview", "--dataset", str(tmp_path / "m.h5"), "--pred-2d", str(tmp_path / "det"),
                 "--step", "2", "--json", str(tmp_path / "mv.json")]) == 0
    out = capsys.readouterr().out
    assert "Tab. 3 layout" in out and "Tab. 4 layout" in out and "Mean (GT 2D)" in out
    assert "Mean (Detected 2D)" in out and "SittingDown" in out and "lumbar mm" in out
    saved = json.loads((tmp_path / "mv.json").read_text())
    assert saved["frames"] == 12 and saved["methods"]["Oracle (GT 2D)"]["mpjpe"]["Mean"]["all"] < 0.1


def test_missing_detections_and_subjects_are_one_line_errors(tmp_path, capsys):
    from simspine.cli import main

    _mini_store(tmp_path / "m.h5", T=4)
    (tmp_path / "empty").mkdir()
    assert main(["bench", "multiview", "--dataset", str(tmp_path / "m.h5"), "--pred-2d", str(tmp_path / "empty")]) == 2
    assert "no detections for S9/" in capsys.readouterr().err
    assert main(["bench", "multiview", "--dataset", str(tmp_path / "m.h5"), "--subjects", "S1"]) == 2
    assert "subjects not in the store: S1" in capsys.readouterr().err
