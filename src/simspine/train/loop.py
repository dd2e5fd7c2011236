"""``simspine train 2d``: fine-tuning a SpineTrack-37 model on COCO-keypoints datasets.

AdamW (no weight decay on biases and norms, as RTMPose), a per-batch learning-rate schedule
(linear warm-up then cosine), batches mixed from the training sets by
:class:`simspine.sampling.MixedBatchSampler` (per-batch mixing, paper §4.4), the augmentation
stage of each epoch (:mod:`simspine.train.augment`), RTMPose's SimCC KL loss. After every epoch:
evaluation on the validation set through :mod:`simspine.metrics` (PCK-AUC of all 37 keypoints
and of the spine, COCO OKS AP/AR for body and spine) and an atomic checkpoint ``OUT/last.pt``
(model, optimiser, schedule, scaler, epoch, history, settings); a run started again with the same
settings resumes after the last finished epoch and gives the same weights as one never stopped
(the augmentation and batch order are pure functions of seed, epoch and batch). At the end:
``OUT/spinetrack37_<H>x<W>.onnx`` checked against torch, and ``OUT/history.json``.
CPU by default; ``device = "auto"`` or ``"cuda"`` uses a GPU, with mixed precision (``amp``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from simspine.errors import InputError
from simspine.fileio import atomic_path, ensure_out_dir, write_text_atomic

CHECKPOINT = "last.pt"
# settings a resumed run may change: where and how it runs, not what it learns
RESUMABLE_CHANGES = {"train.threads", "train.workers", "train.device", "train.amp", "train.eval_batch_size",
                     "train.export_onnx"}


@dataclass
class TrainResult:
    """What a run left: the model (on CPU), per-epoch history, output folder and files."""

    model: torch.nn.Module
    history: list = field(default_factory=list)
    initial: dict = field(default_factory=dict)
    out: Path | None = None
    checkpoint: Path | None = None
    onnx: Path | None = None
    onnx_diff_px: float | None = None
    device: str = "cpu"
    resumed_after: int | None = None      # the epoch (1-based) a resumed run continued after
    batches_run: int = 0                  # batches this call trained (not those before a resume)


def choose_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when torch sees a GPU) as a torch device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "[train] device = 'cuda' but torch sees no GPU (use 'cpu' or 'auto')")
    return torch.device(name)


def simcc_loss(px, py, tx, ty, w, beta: float):
    """RTMPose's KL loss of SimCC outputs (N, K, bins) against Gaussian labels, both through a
    softmax at temperature 1/``beta``; KL summed over bins, averaged over labelled keypoints
    (``w`` (N, K) weights)."""
    def kl(p, t):
        logp = F.log_softmax(p.float() * beta, -1)
        q = F.softmax(t * beta, -1)
        return (q * (torch.log(q.clamp_min(1e-20)) - logp)).sum(-1)

    per = (kl(px, tx) + kl(py, ty)) * w
    return per.sum() / w.sum().clamp_min(1.0)


def lr_factor(it: int, total: int, ocfg) -> float:
    """Learning-rate multiplier at batch ``it`` of ``total``: linear warm-up, then cosine (or
    constant) to ``min_lr_ratio``."""
    warm = min(ocfg.warmup_iters, max(total - 1, 0))
    if it < warm:
        return ocfg.warmup_start + (1 - ocfg.warmup_start) * it / warm
    if ocfg.schedule == "constant":
        return 1.0
    t = (it - warm) / max(total - warm, 1)
    return ocfg.min_lr_ratio + (1 - ocfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def predict_dataset(model, ds, indices, batch_size: int = 32, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (n, K, 2) px and scores (n, K) of samples ``indices`` of a
    :class:`~simspine.train.coco_data.CocoKeypoints`, from their annotated boxes."""
    from simspine.detect.spinepose_backend import decode_simcc

    from .coco_data import eval_crops
    from .model import normalise_crops

    H, W = model.input_hw
    model.eval()
    xs, ss = [], []
    indices = list(indices)
    for k in range(0, len(indices), batch_size):
        crops, cs = eval_crops(ds, (H, W), indices[k:k + batch_size])
        sx, sy = (t.float().cpu().numpy() for t in model(torch.from_numpy(normalise_crops(crops)).to(device)))
        for i, (c, s) in enumerate(cs):
            xy, sc = decode_simcc(sx[i:i + 1], sy[i:i + 1], c, s, (W, H), model.split_ratio)
            xs.append(xy[0])
            ss.append(sc[0])
    return np.stack(xs), np.stack(ss)


def evaluate(model, ds, batch_size: int = 32, max_samples: int = 0, device="cpu") -> dict:
    """PCK-AUC (all 37, spine) and COCO OKS AP/AR (body, spine) of ``model`` on ``ds`` through
    :mod:`simspine.metrics`."""
    from simspine.metrics import coco_oks, oks_subset, pck_auc

    n = len(ds) if not max_samples else min(max_samples, len(ds))
    idx = np.arange(n)
    pred, score = predict_dataset(model, ds, idx, batch_size, device)
    gt, boxes = ds.keypoints[idx], ds.boxes[idx]
    vis = gt[..., 2] > 0
    gxy = np.where(vis[..., None], gt[..., :2], np.nan)
    spine = oks_subset("spine")
    det_score = np.nan_to_num(np.clip(score, 0, None)).mean(1)
    out = {"auc": pck_auc(pred, gxy, boxes, visible=vis),
           "auc_spine": pck_auc(pred[:, spine], gxy[:, spine], boxes, visible=vis[:, spine])}
    for sub in ("body", "spine"):
        r = coco_oks(gt, boxes, pred, det_score, subset=sub)
        out[f"ap_{sub}"], out[f"ar_{sub}"] = r["AP"], r["AR"]
    out["n"] = int(n)
    return out


def _fmt(m: dict) -> str:
    return (f"AUC {m['auc']:.3f} (spine {m['auc_spine']:.3f}), AP body {m['ap_body']:.3f} AR {m['ar_body']:.3f}, "
            f"AP spine {m['ap_spine']:.3f} AR {m['ar_spine']:.3f}")


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path) -> dict:
    """A checkpoint written by :func:`train_2d` (``model`` state, ``meta``, ``config``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise InputError(path, f"not a readable checkpoint ({str(e).splitlines()[0]})") from None


def _diff_keys(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def train_2d(cfg, log=print, restart: bool = False, on_batch=None) -> TrainResult:
    """Run (or resume) the training a :class:`~simspine.train.config.Config` describes.

    ``log``: one line per progress report; ``restart``: ignore an existing checkpoint;
    ``on_batch(epoch, batch, loss)``: called after each optimiser step (tests stop a run there).
    """
    from simspine.sampling import MixedBatchSampler

    from .coco_data import CocoKeypoints, CurriculumDataset, KeyedBatches
    from .export import export_onnx, onnx_name, onnx_vs_torch
    from .model import build_model

    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    device = choose_device(t.device)
    amp = bool(t.amp and device.type == "cuda")
    sets = [CocoKeypoints(d.annotations, d.images, d.name) for d in cfg.train_sets]
    val = CocoKeypoints(cfg.val.annotations, cfg.val.images, cfg.val.name) if cfg.val else None
    data = CurriculumDataset(sets, cfg)
    nb = t.batches_per_epoch or max(1, math.ceil(len(data) / t.batch_size))
    sampler = MixedBatchSampler(data.sizes, t.batch_size, shares=[d.share for d in cfg.train_sets], num_batches=nb,
                                seed=t.seed)
    torch.manual_seed(t.seed)
    model = build_model(cfg.model, source=cfg.source)
    if cfg.model.init_checkpoint:
        try:
            model.load_state_dict(load_checkpoint(cfg.model.init_checkpoint)["model"])
        except (KeyError, RuntimeError) as e:
            raise InputError(cfg.model.init_checkpoint, "weights do not fit the [model] of this config "
                                                        f"({str(e).splitlines()[0][:200]})") from None
    model.to(device)
    opt = torch.optim.AdamW(_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                            betas=tuple(cfg.optim.betas))
    total = t.epochs * nb
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, total, cfg.optim))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    out = ensure_out_dir(t.out)
    ck = out / CHECKPOINT
    res = TrainResult(model=model, out=out, checkpoint=ck, device=str(device))
    start = 0
    settings = cfg.as_dict()
    if ck.exists() and not restart:
        state = load_checkpoint(ck)
        diff = [k for k in _diff_keys(state.get("config", {}), settings) if k not in RESUMABLE_CHANGES]
        if diff:
            raise InputError(ck, f"written with other settings (differ: {', '.join(diff[:6])}); "
                                 "give another [train] out, or --restart to start over")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, res.history, res.initial = state["epoch"] + 1, state["history"], state.get("initial", {})
        res.resumed_after = start
        log(f"resuming {ck} after epoch {start} of {t.epochs}")
    names = ", ".join(f"{s.name} {len(s)} ({c}/batch)" for s, c in zip(sets, sampler.counts, strict=True))
    log(f"training on {device}{' (mixed precision)' if amp else ''}: {names}; {nb} batches of {t.batch_size} per "
        f"epoch, {t.epochs} epochs; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    if val is not None and start == 0:
        res.initial = evaluate(model, val, t.eval_batch_size, t.eval_max_samples, device)
        log(f"before training on {val.name}: {_fmt(res.initial)}")
    report = max(1, nb // 4)
    for epoch in range(start, t.epochs):
        stage = data.stage(epoch)
        loader = torch.utils.data.DataLoader(data, batch_sampler=KeyedBatches(sampler, epoch), num_workers=t.workers,
                                             pin_memory=device.type == "cuda")
        model.train()
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for b, (x, tx, ty, w) in enumerate(loader):
            x, tx, ty, w = (v.to(device, non_blocking=True) for v in (x, tx, ty, w))
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                px, py = model(x)
            loss = simcc_loss(px, py, tx, ty, w, cfg.loss.beta)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            res.batches_run += 1
            seen += len(x)
            loss_sum += loss.item() * len(x)
            if (b + 1) % report == 0 or b + 1 == nb:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                log(f"epoch {epoch + 1}/{t.epochs} stage {stage} batch {b + 1}/{nb}: loss {loss_sum / seen:.4f}, "
                    f"lr {sched.get_last_lr()[0]:.2e}, {rate:.1f} samples/s")
            if on_batch is not None:
                on_batch(epoch, b, loss.item())
        entry = {"epoch": epoch + 1, "stage": stage, "loss": loss_sum / max(seen, 1),
                 "seconds": time.perf_counter() - t0, "samples_per_s": seen / max(time.perf_counter() - t0, 1e-9)}
        if val is not None:
            entry.update(evaluate(model, val, t.eval_batch_size, t.eval_max_samples, device))
            log(f"epoch {epoch + 1} on {val.name}: {_fmt(entry)}")
        res.history.append(entry)
        _save(ck, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                   "scaler": scaler.state_dict(), "epoch": epoch, "history": res.history, "initial": res.initial,
                   "config": settings, "meta": {"input_hw": model.input_hw, "n_keypoints": model.n_keypoints,
                                                "split_ratio": model.split_ratio, "kind": model.kind},
                   "torch": torch.__version__})
    model.cpu().float()
    write_text_atomic(out / "history.json", json.dumps({"initial": res.initial, "epochs": res.history}, indent=1))
    if t.export_onnx:
        res.onnx = export_onnx(model, out / onnx_name(model))
        if val is not None:
            n = min(len(val), 8)
            imgs = [val.image(i) for i in range(n)]
            boxes = [val.boxes[i] + np.array([0, 0, val.boxes[i][0], val.boxes[i][1]]) for i in range(n)]
            res.onnx_diff_px = onnx_vs_torch(model, res.onnx, imgs, boxes)
            log(f"wrote {res.onnx} (onnxruntime vs torch keypoints: max {res.onnx_diff_px:.2g} px)")
        else:
            log(f"wrote {res.onnx}")
    return res
