"""The spinepose lifter as a peer (simspine.lift.peer, bench lift --peer-onnx) with tiny ONNX models of
the same input/output form (37x2 -> 37x3) whose output is known."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from simspine.lift.peer import PeerOptions, peer_predict, predicted_height  # noqa: E402


def _export(net, path, batch_one=False):
    """Export ``net`` (N, 37, 2) -> (N, 111) to ONNX; a dynamic batch axis unless ``batch_one``."""
    dummy = torch.zeros(1 if batch_one else 2, 37, 2)
    kw = {} if batch_one else {"dynamic_axes": {"x": {0: "n"}, "y": {0: "n"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net.eval(), (dummy,), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                          dynamo=False, **kw)
    return path


class _Scale(torch.nn.Module):
    """(x, y) -> (2x, 2y, 3) per keypoint through a Linear(74 -> 111) with set weights."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(74, 111)
        w = torch.zeros(111, 74)
        for k in range(37):
            w[3 * k, 2 * k] = 2.0
            w[3 * k + 1, 2 * k + 1] = 2.0
        b = torch.zeros(111)
        b[2::3] = 3.0
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(b)

    def forward(self, x):
        return self.lin(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("batch_one", [False, True])
def test_peer_normalisation_and_output_known(tmp_path, batch_one):
    path = _export(_Scale(), tmp_path / "peer.onnx", batch_one)
    rng = np.random.default_rng(0)
    uv = rng.uniform(0, 1000, (5, 37, 2))
    Kc = np.array([[1150.0, 0, 510], [0, 1140.0, 505], [0, 0, 1]])
    xn = (uv - Kc[[0, 1], [2, 2]]) / Kc[[0, 1], [0, 1]]
    # camera-normalised input, mean/std applied, root (Hip, 19) subtracted, 0.5 m per unit
    opts = PeerOptions("camera", (0.1, -0.2), (2.0, 4.0), 0.5)
    z = (xn - [0.1, -0.2]) / [2.0, 4.0]
    want = np.concatenate([2 * z, np.full((5, 37, 1), 3.0)], -1)
    want = (want - want[:, 19:20]) * 0.5
    got = peer_predict(path, uv, np.repeat(Kc[None], 5, 0), opts)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got[:, 19]).max() == 0.0
    # raw pixels in, scaled to a 1.84 m median height
    got = peer_predict(path, uv, None, PeerOptions("pixels", subject_height=1.84))
    assert np.median(predicted_height(got)) == pytest.approx(1.84, rel=1e-6)
    raw = np.concatenate([2 * uv, np.full((5, 37, 1), 3.0)], -1)
    raw -= raw[:, 19:20]
    np.testing.assert_allclose(got * np.median(predicted_height(raw)) / 1.84, raw, rtol=1e-5, atol=1e-3)


def test_bench_lift_peer_constant_pose_equals_mean_pose_row(tmp_path, capsys):
    """A peer whose output is the lifter's training mean pose (weights 0, bias = that pose) scores
    exactly the Mean pose row on the same frames."""
    from test_lift_cli import _lift_store

    from simspine.cli import main
    from simspine.lift.evaluate import lifter_mean_pose
    from simspine.lift.model import load_checkpoint

    _lift_store(tmp_path / "l.h5", T=60)
    opts = ["--dataset", str(tmp_path / "l.h5"), "--rate-hz", "50", "--epochs", "1", "--hidden", "32",
            "--batch-size", "64", "--threads", "1", "--variant", "full"]
    assert main(["train", "lift", *opts, "--out", str(tmp_path / "ck"), "--no-onnx"]) == 0
    ck = tmp_path / "ck" / "lift_full_gt.pt"
    lifter, _ids, _state = load_checkpoint(ck)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(74, 111))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor(lifter_mean_pose(lifter, 1)[0].ravel(), dtype=torch.float32))
    peer = _export(net, tmp_path / "peer.onnx")
    capsys.readouterr()
    assert main(["bench", "lift", *opts, "--checkpoints", str(ck), "--peer-onnx", str(peer),
                 "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "spinepose lifter | GT" in out and "input camera" in out
    r = json.loads((tmp_path / "b.json").read_text())
    peer_row, mean_row = r["rows"]["spinepose lifter | GT"], r["mean_pose"]["Mean pose | GT"]
    assert peer_row["samples"] == r["rows"]["Full-Body | GT"]["samples"] == 480  # 2 x 60 frames x 4 cameras
    for metric in ("p_mpjpe", "rr_mpjpe"):
        for region in ("lumbar", "thoracic", "cervical", "spine"):
            assert peer_row[metric]["Mean"][region] == pytest.approx(mean_row[metric]["Mean"][region], abs=1e-3)
    assert mean_row["rr_mpjpe"]["Mean"]["spine"] > 1.0  # a real error, not two zeros


def test_bad_onnx_file_is_named(tmp_path):
    from simspine.errors import InputError

    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError, match="x.onnx: not a loadable ONNX model"):
        peer_predict(tmp_path / "x.onnx", np.zeros((1, 37, 2)), None, PeerOptions("pixels"))
