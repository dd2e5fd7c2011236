"""simspine.bench.ik_device: the portable batched-IK problem and its synthetic run (on the CPU
here; the same code ran on an H200, docs/measurements/ik_batched_gpu_h200.json)."""

import numpy as np
import pytest

pytest.importorskip("torch")

from simspine.bench import ik_device  # noqa: E402


def test_motion_within_ranges_and_smooth():
    ranges = {"a": (-1.0, 1.0, 0.0), "knee_angle_r": (0.0, 2.0, 0.5), "pro_sup_r": (-1.0, 1.0, 0.3),
              "pelvis_tx": (-5.0, 5.0, 0.1)}
    z = ik_device.motion(list(ranges), ranges, ["pro_sup"], 3, 200, seed=4)
    assert z.shape == (3, 200, 4)
    lo = np.array([r[0] for r in ranges.values()])
    hi = np.array([r[1] for r in ranges.values()])
    assert np.all(z >= lo) and np.all(z <= hi)
    np.testing.assert_allclose(z[:, :, 2], 0.3)  # unobserved: its default
    assert not np.allclose(z[0], z[1])  # chains differ
    # Sinusoids of 0.2-1 Hz at 50 Hz: small steps; the pelvis travels around its default.
    assert np.abs(np.diff(z[:, :, 0], axis=1)).max() < 2 * np.pi * 1.0 * 0.4 / 50 + 1e-9
    assert abs(z[:, :, 3].mean() - 0.1) < 0.3


def test_export_and_run_on_cpu(tmp_path):
    f = ik_device.export(tmp_path / "problem.pkl")
    out = ik_device.run(f, chains=2, frames=4, device="cpu", noise_mm=10.0, cpu_chains=1)
    assert out["chains"] == 2 and out["frames_per_chain"] == 4
    # The same solver on the same device: identical poses.
    assert out["device_vs_cpu_max_angle_diff_deg"] == 0.0
    assert out["frames_per_s"] == pytest.approx(8 / out["seconds"])
    assert out["projected_h36m_hours"] == pytest.approx(ik_device.H36M_FRAMES / out["frames_per_s"] / 3600)
    # 10 mm per-axis noise: about 17 mm per marker, a little less after the fit.
    assert 10.0 < out["marker_rms_mm"] < 20.0
    assert out["l5_s1_flexion_rms_deg"] < 3.0


def test_bench_ik_refuses_a_bad_device_before_any_work(capsys, monkeypatch):
    """`bench ik --device` is checked first: a name torch does not know, or CUDA where torch sees
    no GPU, is a one-line error and exit code 2, before the model is prepared."""
    import torch

    from simspine.bench import ik as bench_ik
    from simspine.cli import main

    called = []
    monkeypatch.setattr("simspine.biomech.model.prepare_model", lambda *a, **k: called.append(1))
    assert main(["bench", "ik", "--device", "bogus"]) == 2
    assert "--device 'bogus' is not a torch device" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "ik", "--device", "cuda"]) == 2
    assert "torch sees no CUDA GPU" in capsys.readouterr().err
    assert not called
    bench_ik._check_device("cpu")  # fine
