"""Lifting baselines: normalisation round trip, a tiny SimpleBaseline3D learns, ONNX equals torch."""

from __future__ import annotations

import numpy as np
import pytest

from simspine.lift.data import LiftSamples, Normalizer, variant_keypoints


def synthetic_samples(n=600, variant="full", seed=0) -> LiftSamples:
    """Poses (a base body, per-sample joint jitter and a rotation about the vertical) seen by a pinhole
    camera 4-5 m away: 2D px in, camera-frame 3D m out."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    ids = variant_keypoints(variant)
    K = len(ids)
    base = rng.normal(scale=0.25, size=(K, 3)) * np.array([1, 3, 1])  # tall body, y up
    modes = rng.normal(scale=0.05, size=(3, K, 3))  # a few shape modes (bending, ...)
    w = rng.normal(size=(n, 3))
    pose = base + np.einsum("nm,mkd->nkd", w, modes)
    R = Rotation.from_euler("y", rng.uniform(-np.pi, np.pi, (n, 1))).as_matrix()
    X = np.einsum("nij,nkj->nki", R, pose) + np.c_[rng.uniform(-0.5, 0.5, n), np.zeros(n), rng.uniform(4, 5, n)][:, None]
    X[..., 1] *= -1  # camera y down
    uv = 1100 * X[..., :2] / X[..., 2:] + np.array([500, 500])
    actions = np.where(np.arange(n) % 2, "Walking", "Sitting")
    return LiftSamples(uv, X, ids, actions, np.array(["S1"] * n))


def test_normaliser_round_trip_and_root():
    s = synthetic_samples(50, "spine")
    assert len(s.keypoints) == 15 and s.keypoints[s.root_index] == 19
    nm = Normalizer.fit(s.x2d, s.y3d, s.root_index)
    z = nm.encode_3d(s.y3d)
    assert z.shape == (50, 14 * 3)
    assert np.allclose(z.mean(0), 0, atol=1e-9) and np.allclose(z.std(0), 1, atol=1e-9)
    back = nm.decode_3d(z)
    rr = s.y3d - s.y3d[:, [s.root_index]]
    assert np.allclose(back, rr, atol=1e-12) and np.allclose(back[:, s.root_index], 0)
    x = nm.encode_2d(s.x2d)
    assert x.shape == (50, 30) and np.allclose(x.mean(0), 0, atol=1e-9)
    nm2 = Normalizer.from_dict(nm.to_dict())
    assert np.allclose(nm2.decode_3d(z), back)


def test_tiny_model_learns_beats_mean_pose_and_onnx_matches(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from simspine.lift.model import (
        TrainConfig,
        export_onnx,
        load_checkpoint,
        onnx_check,
        predict,
        save_checkpoint,
        train,
    )
    from simspine.metrics import root_relative_mpjpe

    tr = synthetic_samples(1200, "full", seed=0)
    te = synthetic_samples(1500, "full", seed=0)  # the same body and modes; rows 1200+ are new poses
    te = LiftSamples(te.x2d[1200:], te.y3d[1200:], te.keypoints, te.action[1200:], te.subject[1200:])
    cfg = TrainConfig(hidden=128, epochs=12, batch_size=64, lr=3e-3, dropout=0.1, lr_step_epochs=5, device="cpu",
                      threads=1)
    res = train(tr, cfg)
    assert res.losses[-1] < 0.5 * res.losses[0], res.losses
    pred = predict(res.lifter, te.x2d)
    assert pred.shape == te.y3d.shape and np.allclose(pred[:, te.root_index], 0)
    err = root_relative_mpjpe(pred, te.y3d)
    rr_tr = tr.y3d - tr.y3d[:, [tr.root_index]]
    mean_pose = np.broadcast_to(rr_tr.mean(0), te.y3d.shape)
    err_mean = root_relative_mpjpe(mean_pose, te.y3d)
    assert err < 0.5 * err_mean, (err, err_mean)

    ck = save_checkpoint(tmp_path / "lift.pt", res, {"variant": "full"})
    lifter, ids, state = load_checkpoint(ck)
    assert np.array_equal(ids, tr.keypoints) and state["meta"]["variant"] == "full"
    assert np.allclose(predict(lifter, te.x2d), pred, atol=1e-6)
    onnx_path = export_onnx(lifter, tmp_path / "lift.onnx", len(ids))
    assert onnx_check(lifter, onnx_path, te.x2d[:37]) < 1e-4


def test_default_threads_follow_the_load(monkeypatch):
    """One thread per core not already busy: all cores when idle, one when the load fills them."""
    import os

    from simspine.lift.model import default_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert default_threads() == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (2.4, 0.0, 0.0))
    assert default_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert default_threads() == 1


def test_train_restores_torch_threads_and_reports_them():
    torch = pytest.importorskip("torch")
    from simspine.lift.model import TrainConfig, train

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    res = train(synthetic_samples(64, "spine"), TrainConfig(hidden=16, epochs=1, batch_size=32, device="cpu",
                                                            threads=want))
    assert res.threads == want and torch.get_num_threads() == before and len(res.losses) == 1


def test_device_choice():
    torch = pytest.importorskip("torch")
    from simspine.errors import InputError
    from simspine.lift.model import pick_device

    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="sees no CUDA GPU"):
            pick_device("cuda")
