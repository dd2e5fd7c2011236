"""SimpleBaseline3D (Martinez et al. 2017) in PyTorch: training, checkpoints, ONNX export.

Network: linear (2K → 1024), batch norm, ReLU, dropout 0.5; two residual blocks of two such
layers each; linear (1024 → 3(K−1)). Max-norm: after every optimiser step each linear layer's
weight rows (one per output unit) are renormalised to an L2 norm of at most 1, as Keras'
``max_norm(1)`` constraint the original code's ``max_norm`` option corresponds to. Loss: MSE on the
normalised root-less targets; AdamW with a step learning-rate schedule (paper §4.3).

:class:`Lifter` wraps the network with the :class:`~simspine.lift.data.Normalizer` so that it maps
raw pixels (N, K, 2) to root-relative metres (N, K, 3): that is what is exported to ONNX
(``export_onnx``, checked against torch with onnxruntime). Device: ``"auto"`` uses a CUDA GPU when
torch sees one, else the CPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.lift.data import LiftSamples, Normalizer


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - extra missing
        raise InputError("torch", f"not installed ({e}); pip install -e '.[lift]'") from None
    return torch


@dataclass
class TrainConfig:
    """Training settings (stored in the checkpoint)."""

    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.5
    max_norm: float = 1.0
    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_step_epochs: int = 2
    lr_gamma: float = 0.5
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # CPU threads for torch (None: default_threads())


def build_network(n_in: int, n_out: int, hidden: int = 1024, blocks: int = 2, dropout: float = 0.5):
    """The SimpleBaseline3D ``torch.nn.Module``."""
    torch = _torch()
    nn = torch.nn

    def layer():
        return [nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(*layer(), *layer())

        def forward(self, x):
            return x + self.f(x)

    class SimpleBaseline3D(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Sequential(nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout))
            self.blocks = nn.Sequential(*(Block() for _ in range(blocks)))
            self.out = nn.Linear(hidden, n_out)

        def forward(self, x):
            return self.out(self.blocks(self.inp(x)))

    return SimpleBaseline3D()


def apply_max_norm(net, max_norm: float = 1.0) -> None:
    """Renormalise each linear layer's weight rows to L2 norm ≤ ``max_norm`` (in place)."""
    torch = _torch()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                # in place (no new tensor per step): rows scaled by min(1, max_norm / norm), as renorm
                n = torch.linalg.vector_norm(m.weight, dim=1, keepdim=True)
                m.weight.mul_(torch.clamp(max_norm / (n + 1e-7), max=1.0))


def make_lifter(net, norm: Normalizer):
    """A module mapping raw px (N, K, 2) → root-relative m (N, K, 3): normalisation, network, decoding."""
    torch = _torch()

    class Lifter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            f = torch.float32
            self.register_buffer("mean2d", torch.tensor(norm.mean2d, dtype=f))
            self.register_buffer("std2d", torch.tensor(norm.std2d, dtype=f))
            o = norm.others
            self.register_buffer("mean3d", torch.tensor(norm.mean3d[o], dtype=f))
            self.register_buffer("std3d", torch.tensor(norm.std3d[o], dtype=f))
            self.register_buffer("index", torch.tensor(o, dtype=torch.long))
            self.K = len(norm.mean2d)

        def forward(self, x2d):
            n = x2d.shape[0]
            z = self.net(((x2d - self.mean2d) / self.std2d).reshape(n, -1))
            y = z.reshape(n, -1, 3) * self.std3d + self.mean3d
            out = torch.zeros(n, self.K, 3, dtype=y.dtype, device=y.device)
            return out.index_copy(1, self.index, y)

    return Lifter()


def default_threads() -> int:
    """CPU threads for training: one per core not already busy (cores minus the 1-minute load
    average, at least 1). Why: torch's OpenMP threads wait for each other at every operation, so a
    thread whose core another process holds stalls them all; on this shared 2-core machine at load
    4.5, one batch of 256 took 0.13 CPU-s with 1 thread and 1.1 CPU-s with 2 (batch norm 0.24 vs 46 ms)."""
    import os

    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not on Linux/macOS
        load = 0.0
    return int(max(1, min(cores, round(cores - load))))


def pick_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda``/``cuda:N`` without a GPU is an
    error (one line) rather than torch's traceback at the first tensor."""
    torch = _torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"--device {device}: torch {torch.__version__} sees no CUDA GPU "
                               "(use --device cpu or auto)")
    return device


def _adamw(torch, params, cfg: TrainConfig):
    """AdamW, the fused kernel where torch has it for the device (on this 2-core CPU its step takes
    50 instead of 270 ms CPU for the 4.3 M weights: a third of a batch of 256's time), else the default."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class TrainResult:
    lifter: object
    norm: Normalizer
    config: TrainConfig
    keypoints: np.ndarray
    losses: list[float]
    seconds: float
    device: str
    samples: int
    threads: int = 0  # CPU threads used (0 on a GPU)
    cpu_seconds: float = 0.0  # this process's CPU time for the training loop


def train(samples: LiftSamples, config: TrainConfig | None = None, log=None) -> TrainResult:
    """Train SimpleBaseline3D on ``samples``; returns the :class:`Lifter` (eval mode, on the CPU)
    and the mean training loss per epoch."""
    torch = _torch()
    cfg = config or TrainConfig()
    if len(samples) < 2:
        raise InputError(None, f"too few training samples ({len(samples)})")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dev = pick_device(cfg.device)
    if dev == "cpu":
        threads_before = torch.get_num_threads()
        torch.set_num_threads(int(cfg.threads or default_threads()))
    try:
        return _train(torch, samples, cfg, rng, dev, log)
    finally:
        if dev == "cpu":
            torch.set_num_threads(threads_before)


def _train(torch, samples: LiftSamples, cfg: TrainConfig, rng, dev: str, log) -> TrainResult:
    """The training loop of :func:`train` (threads and seeds set)."""
    threads = torch.get_num_threads() if dev == "cpu" else 0
    norm = Normalizer.fit(samples.x2d, samples.y3d, samples.root_index)
    X = torch.tensor(norm.encode_2d(samples.x2d), dtype=torch.float32, device=dev)
    Y = torch.tensor(norm.encode_3d(samples.y3d), dtype=torch.float32, device=dev)
    net = build_network(X.shape[1], Y.shape[1], cfg.hidden, cfg.blocks, cfg.dropout).to(dev)
    opt = _adamw(torch, net.parameters(), cfg)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.lr_step_epochs), gamma=cfg.lr_gamma)
    loss_fn = torch.nn.MSELoss()
    losses = []
    t0, c0 = time.perf_counter(), time.process_time()
    n = len(X)
    bs = max(2, min(cfg.batch_size, n))
    for ep in range(cfg.epochs):
        net.train()
        perm = torch.tensor(rng.permutation(n), device=dev)
        # the loss sum stays on the device: no host round trip (a GPU sync) per step
        total, count = torch.zeros((), device=dev), 0
        for i in range(0, n - 1, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            opt.zero_grad()
            loss = loss_fn(net(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            if cfg.max_norm:
                apply_max_norm(net, cfg.max_norm)
            total += loss.detach() * len(idx)
            count += len(idx)
        sched.step()
        losses.append(float(total) / max(count, 1))
        if log:
            log(f"epoch {ep + 1}/{cfg.epochs}: loss {losses[-1]:.4f}")
    net = net.to("cpu").eval()
    lifter = make_lifter(net, norm).eval()
    return TrainResult(lifter, norm, cfg, np.asarray(samples.keypoints), losses, time.perf_counter() - t0, dev,
                       len(samples), threads, time.process_time() - c0)


def predict(lifter, x2d: np.ndarray, batch: int = 4096, threads: int | None = None) -> np.ndarray:
    """Root-relative 3D (N, K, 3) m of raw 2D (N, K, 2) px (eval mode, CPU; ``threads``: torch CPU
    threads, default :func:`default_threads`, restored afterwards)."""
    torch = _torch()
    out = []
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads or default_threads()))
    try:
        with torch.no_grad():
            for i in range(0, len(x2d), batch):
                out.append(lifter(torch.tensor(np.asarray(x2d[i:i + batch]), dtype=torch.float32)).numpy())
    finally:
        torch.set_num_threads(before)
    return np.concatenate(out).astype(float) if out else np.zeros((0,) + np.shape(x2d)[1:-1] + (3,))


def save_checkpoint(path, result: TrainResult, meta: dict | None = None) -> Path:
    """``path`` (.pt): network weights, normaliser, config, keypoint ids, losses and ``meta``."""
    torch = _torch()
    from simspine.fileio import atomic_path

    path = Path(path)
    state = {"format": "simspine.lift/1", "state_dict": result.lifter.net.state_dict(),
             "norm": {k: np.asarray(v).tolist() if not isinstance(v, int) else v for k, v in result.norm.to_dict().items()},
             "config": asdict(result.config), "keypoints": result.keypoints.tolist(), "losses": result.losses,
             "n_in": int(result.lifter.net.inp[0].in_features), "n_out": int(result.lifter.net.out.out_features),
             "meta": json.loads(json.dumps(meta or {}, default=str))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path):
    """``(lifter, keypoints (K,), state dict)`` of a checkpoint written by :func:`save_checkpoint`."""
    torch = _torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise InputError(path, f"not a readable lifting checkpoint ({e})") from None
    if not isinstance(state, dict) or state.get("format") != "simspine.lift/1":
        raise InputError(path, "not a simspine lifting checkpoint")
    cfg = state["config"]
    net = build_network(state["n_in"], state["n_out"], cfg["hidden"], cfg["blocks"], cfg["dropout"])
    net.load_state_dict(state["state_dict"])
    lifter = make_lifter(net.eval(), Normalizer.from_dict(state["norm"])).eval()
    return lifter, np.asarray(state["keypoints"], dtype=int), state


def export_onnx(lifter, path, n_keypoints: int) -> Path:
    """Export the lifter (px (N, K, 2) → root-relative m (N, K, 3), dynamic N) to ONNX (opset 17)."""
    torch = _torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, n_keypoints, 2)
    import warnings

    with warnings.catch_warnings():  # the TorchScript exporter: no onnxscript needed, deprecation noted
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(lifter.eval(), (dummy,), str(path), input_names=["keypoints2d"], output_names=["keypoints3d"],
                          dynamic_axes={"keypoints2d": {0: "n"}, "keypoints3d": {0: "n"}}, opset_version=17,
                          dynamo=False)
    return path


def onnx_check(lifter, path, x2d: np.ndarray) -> float:
    """Largest absolute difference (m) between onnxruntime's and torch's outputs on ``x2d``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"keypoints2d": np.asarray(x2d, dtype=np.float32)})[0]
    return float(np.max(np.abs(got - predict(lifter, x2d))))
