"""The ``simspine train 2d`` configuration: a TOML file whose tables map onto these dataclasses.

Every training choice is a field here with the default that the example config
(``simspine/data/train2d_example.toml``) states; an unknown key or a value of the wrong kind is an
:class:`~simspine.errors.InputError` naming the file and the key. Relative paths are taken from the
config file's folder.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from simspine.errors import InputError


@dataclass
class DatasetConfig:
    """One COCO-keypoints dataset: the JSON, the folder its ``file_name`` s are relative to, and its
    share of each training batch (the shares of the training sets are normalised to sum 1)."""

    annotations: str = ""
    images: str = ""
    name: str = ""
    share: float = 1.0


@dataclass
class ModelConfig:
    """The network. ``backbone``: ``cspnext`` (plain torch, below) or ``timm`` (``timm_name``; needs
    a working timm, i.e. torchvision beside torch). ``init_onnx``: start from a SpinePose ONNX
    converted with onnx2torch (the whole network is replaced by the converted graph)."""

    input_size: list[int] = field(default_factory=lambda: [256, 192])   # H, W px (SpinePose s/m/l)
    split_ratio: float = 2.0            # SimCC bins per input pixel (spinepose decodes argmax / 2.0)
    backbone: str = "cspnext"
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    depths: list[int] = field(default_factory=lambda: [1, 2, 2, 1])
    head_kernel: int = 7                # RTMPose's final 7×7 conv to one map per keypoint
    head_hidden: int = 256              # SimCC token width (RTMPose: 256)
    timm_name: str = ""
    timm_weights: str = ""              # a local weights file for the timm backbone (no downloads)
    init_onnx: str = ""
    init_checkpoint: str = ""           # a .pt from an earlier run (weights only)


@dataclass
class LossConfig:
    """RTMPose's SimCC loss: Gaussian labels (sigma in SimCC bins, x and y) compared by KL divergence
    after a softmax at temperature 1/beta on both prediction and label (mmpose ``KLDiscretLoss``)."""

    sigma: list[float] = field(default_factory=lambda: [4.9, 5.66])
    beta: float = 10.0


@dataclass
class StageConfig:
    """One curriculum stage (Supplementary A). Probabilities per sample; ``scale`` a range of box
    scale factors; ``rotate`` and ``shift`` the spread of a normal clipped at 2× (rotation, degrees)
    or 1× (shift, fraction of the box); ``dropout_size`` the hole's side range as a fraction of the
    crop."""

    flip_p: float = 0.5
    half_body_p: float = 0.3
    scale: list[float] = field(default_factory=lambda: [0.75, 1.25])
    rotate: float = 60.0
    rotate_p: float = 0.6
    shift: float = 0.0
    shift_p: float = 0.3
    photometric: bool = False
    blur_p: float = 0.0
    median_blur_p: float = 0.0
    dropout_p: float = 0.0
    dropout_holes: int = 1
    dropout_size: list[float] = field(default_factory=lambda: [0.2, 0.4])


def _stage1() -> StageConfig:
    return StageConfig(scale=[0.6, 1.4], rotate=80.0, shift=0.16, photometric=True, blur_p=0.1, median_blur_p=0.1,
                       dropout_p=1.0)


def _stage2() -> StageConfig:
    return StageConfig(scale=[0.75, 1.25], rotate=60.0, shift=0.0, blur_p=0.1, median_blur_p=0.1, dropout_p=0.5)


def _stage3() -> StageConfig:
    return StageConfig(half_body_p=0.0, scale=[0.9, 1.1], rotate=30.0, shift=0.0)


@dataclass
class AugmentConfig:
    """The three stages and the epoch fractions where stage 2 and stage 3 start."""

    switch: list[float] = field(default_factory=lambda: [0.4, 0.7])
    stage1: StageConfig = field(default_factory=_stage1)
    stage2: StageConfig = field(default_factory=_stage2)
    stage3: StageConfig = field(default_factory=_stage3)


@dataclass
class OptimConfig:
    """AdamW and its schedule: linear warm-up over ``warmup_iters`` batches from ``warmup_start``×lr,
    then cosine (or ``constant``) down to ``min_lr_ratio``×lr at the last batch."""

    lr: float = 4e-4
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "cosine"
    warmup_iters: int = 100
    warmup_start: float = 1e-3
    min_lr_ratio: float = 0.05
    grad_clip: float = 0.0             # max gradient norm, 0 = off


@dataclass
class TrainConfig:
    """The run: epochs, batches, seed, device, output folder."""

    out: str = "train2d_out"
    epochs: int = 10
    batch_size: int = 64
    batches_per_epoch: int = 0          # 0: (all training samples) / batch_size
    seed: int = 0
    device: str = "cpu"                 # cpu, cuda or auto (a GPU when torch sees one)
    amp: bool = True                    # mixed precision, on a GPU only
    threads: int = 0                    # torch CPU threads, 0 = torch's default
    workers: int = 0                    # DataLoader worker processes (0: in the training process)
    eval_batch_size: int = 32
    eval_max_samples: int = 0           # 0: the whole validation set each epoch
    export_onnx: bool = True


@dataclass
class Config:
    """Everything ``simspine train 2d`` does, read from one TOML file."""

    train_sets: list[DatasetConfig] = field(default_factory=list)
    val: DatasetConfig | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str | None = None           # the TOML file it came from

    def as_dict(self) -> dict:
        """Plain dict (for checkpoints: a resumed run must have the same settings)."""
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


def _fill(cls, data: dict, where: str, src):
    if not isinstance(data, dict):
        raise InputError(src, f"[{where}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kw = {}
    for key, value in data.items():
        if key not in fields:
            raise InputError(src, f"unknown key {key!r} in [{where}] (known: {', '.join(fields)})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            value = _fill(type(default), value, f"{where}.{key}", src)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(src, f"[{where}] {key} must be true or false, not {value!r}")
        elif isinstance(default, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    (isinstance(default, int) and not isinstance(value, int)):
                raise InputError(src, f"[{where}] {key} must be a {type(default).__name__}, not {value!r}")
        elif isinstance(default, list):
            if not isinstance(value, list) or len(value) != len(default) and key not in ("widths", "depths"):
                raise InputError(src, f"[{where}] {key} must be a list like {default}, not {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise InputError(src, f"[{where}] {key} must be a string, not {value!r}")
        kw[key] = value
    return cls(**kw)


def _resolve(path: str, base: Path) -> str:
    return str(base / path) if path and not os.path.isabs(path) else path


def config_from_dict(data: dict, source: str | os.PathLike | None = None) -> Config:
    """A :class:`Config` from the parsed TOML ``data`` (``[[data.train]]`` tables, ``[data.val]``,
    ``[model]``, ``[loss]``, ``[augment]`` with ``[augment.stage1..3]``, ``[optim]``, ``[train]``);
    relative paths are resolved against ``source``'s folder."""
    src = source
    base = Path(source).resolve().parent if source else Path.cwd()
    known = {"data", "model", "loss", "augment", "optim", "train"}
    for key in data:
        if key not in known:
            raise InputError(src, f"unknown table [{key}] (known: {', '.join(sorted(known))})")
    d = data.get("data", {})
    extra = set(d) - {"train", "val"}
    if extra:
        raise InputError(src, f"unknown key(s) {', '.join(sorted(extra))} in [data] (known: train, val)")
    trains = d.get("train", [])
    if isinstance(trains, dict):
        trains = [trains]
    if not trains:
        raise InputError(src, "no training data: add at least one [[data.train]] table with annotations and images")
    cfg = Config(
        train_sets=[_fill(DatasetConfig, t, "data.train", src) for t in trains],
        val=_fill(DatasetConfig, d["val"], "data.val", src) if "val" in d else None,
        model=_fill(ModelConfig, data.get("model", {}), "model", src),
        loss=_fill(LossConfig, data.get("loss", {}), "loss", src),
        augment=_fill(AugmentConfig, data.get("augment", {}), "augment", src),
        optim=_fill(OptimConfig, data.get("optim", {}), "optim", src),
        train=_fill(TrainConfig, data.get("train", {}), "train", src),
        source=None if source is None else str(source),
    )
    for ds in [*cfg.train_sets, *([cfg.val] if cfg.val else [])]:
        if not ds.annotations:
            raise InputError(src, "every [[data.train]] and [data.val] needs annotations = \"FILE.json\"")
        ds.annotations = _resolve(ds.annotations, base)
        ds.images = _resolve(ds.images, base) if ds.images else str(Path(ds.annotations).parent)
        ds.name = ds.name or Path(ds.annotations).stem
        if ds.share <= 0:
            raise InputError(src, f"share of {ds.name} must be > 0")
    for key in ("init_onnx", "init_checkpoint", "timm_weights"):
        setattr(cfg.model, key, _resolve(getattr(cfg.model, key), base))
    cfg.train.out = _resolve(cfg.train.out, base)
    _check(cfg, src)
    return cfg


def _check(cfg: Config, src) -> None:
    m, t, a = cfg.model, cfg.train, cfg.augment
    if len(m.input_size) != 2 or min(m.input_size) < 8:
        raise InputError(src, f"[model] input_size must be [height, width] of at least 8 px, not {m.input_size}")
    if m.backbone not in ("cspnext", "timm"):
        raise InputError(src, f"[model] backbone must be 'cspnext' or 'timm', not {m.backbone!r}")
    if m.backbone == "cspnext" and not m.init_onnx:
        if len(m.widths) != len(m.depths) or not m.widths:
            raise InputError(src, "[model] widths and depths need one entry per stage")
        stride = 2 ** (len(m.widths) + 1)
        if m.input_size[0] % stride or m.input_size[1] % stride:
            raise InputError(src, f"[model] input_size {m.input_size} must be a multiple of the backbone's stride "
                                  f"{stride} (2 ** (1 + {len(m.widths)} stages))")
    if not (0 < a.switch[0] <= a.switch[1] <= 1):
        raise InputError(src, f"[augment] switch must be two epoch fractions 0 < s1 <= s2 <= 1, not {a.switch}")
    if t.epochs < 1 or t.batch_size < 1:
        raise InputError(src, "[train] epochs and batch_size must be at least 1")
    if t.device not in ("cpu", "cuda", "auto"):
        raise InputError(src, f"[train] device must be cpu, cuda or auto, not {t.device!r}")
    if cfg.optim.schedule not in ("cosine", "constant"):
        raise InputError(src, f"[optim] schedule must be cosine or constant, not {cfg.optim.schedule!r}")


def load_config(path: str | os.PathLike) -> Config:
    """Read and check a ``simspine train 2d`` TOML file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a valid TOML file ({e})") from None
    return config_from_dict(data, path)
