"""The PyTorch Dataset over a store: samples equal the h5py reads, through a DataLoader with 2 workers
(each opening the file itself), windows, per-camera samples in the camera frame, filters, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simspine.calibration import h36m_cameras  # noqa: E402
from simspine.dataset.release import marker_indices  # noqa: E402
from simspine.dataset.sequence import project_keypoints  # noqa: E402
from simspine.dataset.store import write_store  # noqa: E402
from simspine.dataset.torch_dataset import StoreFrames  # noqa: E402
from simspine.errors import InputError  # noqa: E402
from simspine.frames import yup_to_zup, zup_to_yup  # noqa: E402
from simspine.synth.rig import h36m_rig  # noqa: E402

LENGTHS = {("S1", "Walking_1"): 12, ("S1", "Eating"): 9, ("S9", "Walking_1"): 10, ("S9", "Eating"): 7}


def _store(path, extras=True):
    rng = np.random.default_rng(7)
    results = []
    for (s, q), T in LENGTHS.items():
        stage = zup_to_yup(h36m_rig(s).stage_zup)
        kp = stage + rng.uniform(-0.3, 0.3, (1, 37, 3)) + np.array([0, 1.0, 0]) + rng.normal(0, 0.01, (T, 37, 3))
        r = {"markers": kp[:, marker_indices()], "kinematics": rng.normal(0, 10, (T, 62)),
             "meta": {"subject": s, "sequence": q, "action": q.split("_")[0], "subaction": "", "original_name": q,
                      "rate_hz": 50.0}}
        if extras:
            uvv, boxes = project_keypoints(kp, h36m_cameras(s))
            r.update(keypoints37=kp, timestamps=np.arange(T) / 50.0, keypoints2d=uvv, boxes=boxes,
                     rotations_intervertebral_deg=rng.normal(0, 3, (T, 21)),
                     status=rng.integers(0, 4, (T, 37)).astype(np.int8))
        results.append(r)
    subjects = {s: {"cameras": h36m_cameras(s), "model_xml": None, "scaling": None} for s in ("S1", "S9")}
    write_store(path, subjects, results, {})
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("torchds") / "s.h5")


class _WithPid(StoreFrames):
    """Records which process read each sample and that process's file handle."""

    def __getitem__(self, i):
        out = super().__getitem__(i)
        out["pid"] = os.getpid()
        out["handle_pid"] = self._pid
        return out


def test_dataloader_two_workers_matches_h5py(store):
    ds = _WithPid(store, actions=["Walking"], fields=("keypoints3d", "keypoints2d", "kinematics", "rotations",
                                                      "status", "timestamps", "markers"))
    assert len(ds) == 12 + 10
    ds[0]  # the parent opens the file before the workers fork: they must not use its handle
    assert ds._pid == os.getpid()
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    seen, pids = [], set()
    with h5py.File(store, "r") as f:
        for b in loader:
            assert b["keypoints3d"].dtype == torch.float32 and b["status"].dtype == torch.int64
            assert b["keypoints2d"].shape[1:] == (4, 37, 3)
            pids |= set(b["pid"].tolist())
            assert (b["handle_pid"] == b["pid"]).all()  # each worker read through its own handle
            for j, (s, q, t) in enumerate(zip(b["subject"], b["sequence"], b["frame"].tolist(), strict=True)):
                g = f[f"{s}/{q}"]
                np.testing.assert_allclose(b["keypoints3d"][j].numpy(), g["keypoints37"][t], rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(b["keypoints2d"][j].numpy(), g["keypoints2d"][:, t], rtol=1e-6, atol=1e-3)
                np.testing.assert_allclose(b["kinematics"][j].numpy(), g["kinematics"][t], rtol=1e-6, atol=1e-5)
                np.testing.assert_allclose(b["rotations"][j].numpy(), g["rotations_intervertebral_deg"][t],
                                           rtol=1e-6, atol=1e-5)
                np.testing.assert_allclose(b["markers"][j].numpy(), g["markers"][t], rtol=1e-6, atol=1e-6)
                np.testing.assert_array_equal(b["status"][j].numpy(), g["status"][t])
                assert float(b["timestamps"][j]) == pytest.approx(t / 50.0)
                assert b["action"][j] == "Walking"
                seen.append((s, q, t))
    assert len(pids) == 2 and os.getpid() not in pids
    assert seen == [("S1", "Walking_1", t) for t in range(12)] + [("S9", "Walking_1", t) for t in range(10)]
    np.testing.assert_allclose(ds[3]["keypoints3d"], ds[3]["keypoints3d"])  # the parent's handle still works


def test_windows_per_camera_in_camera_frame(store):
    cams = ["54138969", "60457274"]
    ds = StoreFrames(store, subjects=["S9"], cameras=cams, window=4, stride=3, per_camera=True,
                     fields=("keypoints2d", "keypoints3d_camera", "keypoints3d"))
    # S9: Eating 7 frames -> starts 0, 3; Walking_1 10 frames -> 0, 3, 6; x 2 cameras
    assert len(ds) == (2 + 3) * 2
    assert [ds.locate(i) for i in range(4)] == [("S9", "Eating", 0, cams[0]), ("S9", "Eating", 0, cams[1]),
                                                ("S9", "Eating", 3, cams[0]), ("S9", "Eating", 3, cams[1])]
    calib = {c.name: (i, c) for i, c in enumerate(h36m_cameras("S9"))}
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    n = 0
    with h5py.File(store, "r") as f:
        for b in loader:
            assert b["keypoints2d"].shape[1:] == (4, 37, 3) and b["keypoints3d_camera"].shape[1:] == (4, 37, 3)
            for j in range(len(b["frame"])):
                s, q, t, cam = b["subject"][j], b["sequence"][j], int(b["frame"][j]), b["camera"][j]
                ci, c = calib[cam]
                kp = f[f"{s}/{q}/keypoints37"][t:t + 4]
                np.testing.assert_allclose(b["keypoints2d"][j].numpy(), f[f"{s}/{q}/keypoints2d"][ci, t:t + 4],
                                           rtol=1e-6, atol=1e-3)
                # independently: the calibration's world->camera of the Z-up keypoints
                Xc = c.world_to_camera(yup_to_zup(kp).reshape(-1, 3)).reshape(4, 37, 3)
                np.testing.assert_allclose(b["keypoints3d_camera"][j].numpy(), Xc, atol=1e-5)
                assert np.all(Xc[..., 2] > 0)
                np.testing.assert_allclose(b["keypoints3d"][j].numpy(), kp, atol=1e-6)
                n += 1
    assert n == len(ds)


def test_filters_and_errors(store, tmp_path):
    assert len(StoreFrames(store, splits=["train"])) == 12 + 9
    assert len(StoreFrames(store, subjects=["S1"], actions=["Eating"], window=9)) == 1
    assert len(StoreFrames(store, subjects=["S1"], actions=["Eating"], window=10)) == 0
    with pytest.raises(InputError, match="subjects not in the store: S5"):
        StoreFrames(store, subjects=["S5"])
    with pytest.raises(InputError, match="unknown fields pose"):
        StoreFrames(store, fields=("pose",))
    with pytest.raises(InputError, match="has none of the cameras nope"):
        StoreFrames(store, cameras=["nope"])
    with pytest.raises(IndexError):
        StoreFrames(store)[10_000]
    official = _store(tmp_path / "release.h5", extras=False)
    with pytest.raises(InputError, match="S1/Eating has no keypoints2d, keypoints37, rotations_intervertebral_deg, status"):
        StoreFrames(official)
    ds = StoreFrames(official, fields=("markers", "kinematics"))
    with h5py.File(official, "r") as f:
        np.testing.assert_allclose(ds[0]["kinematics"], f["S1/Eating/kinematics"][0], atol=1e-5)


def test_core_package_imports_without_torch():
    code = ("import sys, simspine, simspine.dataset, simspine.dataset.store, simspine.dataset.build, "
            "simspine.dataset.export; assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
