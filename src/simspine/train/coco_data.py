"""COCO-keypoints datasets for training and evaluating SpineTrack-37 models.

Reads any COCO keypoints JSON whose category lists the 37 SpineTrack-37 keypoints (our
``simspine dataset export --format coco`` writes one; another order of the same names is
reordered), with images under a folder that ``file_name`` is relative to. One sample per person
annotation (``iscrowd`` 0, a box of positive size, at least one labelled keypoint). Images are read
with OpenCV in BGR order, as the detect backend feeds them.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.skeletons import spinetrack37


class CocoKeypoints:
    """The person annotations of one COCO keypoints file.

    Attributes: ``files`` (N,) image paths, ``boxes`` (N, 4) x, y, w, h px, ``keypoints``
    (N, 37, 3) u, v px and visibility (> 0: labelled), ``image_ids`` (N,).
    """

    def __init__(self, annotations: str | os.PathLike, images: str | os.PathLike | None = None, name: str = "",
                 cache_images: int = 512):
        self.path = Path(annotations)
        self.root = Path(images) if images else self.path.parent
        self.name = name or self.path.stem
        if not self.path.is_file():
            raise InputError(self.path, "COCO annotations file not found")
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(self.path, f"not a JSON file ({e})") from None
        if not isinstance(d, dict) or not all(k in d for k in ("images", "annotations", "categories")):
            raise InputError(self.path, "not a COCO file: needs images, annotations and categories")
        order = self._keypoint_order(d["categories"])
        files = {im["id"]: im["file_name"] for im in d["images"]}
        rows = []
        for a in d["annotations"]:
            kp = np.asarray(a.get("keypoints", []), dtype=float)
            if a.get("iscrowd", 0) or kp.size != 3 * len(order):
                continue
            kp = kp.reshape(-1, 3)[order]
            b = np.asarray(a.get("bbox", [0, 0, 0, 0]), dtype=float)
            if b.size != 4 or b[2] <= 0 or b[3] <= 0 or not (kp[:, 2] > 0).any():
                continue
            if a["image_id"] not in files:
                raise InputError(self.path, f"annotation {a.get('id')} refers to image {a['image_id']}, "
                                            "which the file does not list")
            rows.append((a["image_id"], b, kp))
        if not rows:
            raise InputError(self.path, "no usable person annotation (iscrowd 0, box, labelled keypoints)")
        self.image_ids = np.array([r[0] for r in rows])
        self.files = [self.root / files[r[0]] for r in rows]
        self.boxes = np.stack([r[1] for r in rows])
        self.keypoints = np.stack([r[2] for r in rows])
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_images

    def _keypoint_order(self, categories) -> np.ndarray:
        names = spinetrack37().names
        cats = [c for c in categories if c.get("keypoints")]
        if not cats:
            return np.arange(len(names))
        theirs = list(cats[0]["keypoints"])
        if len(theirs) != len(names):
            raise InputError(self.path, f"the category has {len(theirs)} keypoints, SpineTrack-37 needs {len(names)}")
        if set(theirs) == set(names):
            return np.array([theirs.index(n) for n in names])
        return np.arange(len(names))   # other names: taken as SpineTrack-37 order

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> np.ndarray:
        """The (H, W, 3) BGR uint8 image of sample ``i`` (a small cache keeps recent ones)."""
        import cv2

        f = self.files[i]
        if f in self._cache:
            self._cache.move_to_end(f)
            return self._cache[f]
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f, f"image of {self.path.name} missing or unreadable")
        self._cache[f] = img
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return img


class CurriculumDataset:
    """Training samples of several :class:`CocoKeypoints` (ConcatDataset order) through the stage
    of the epoch each key names.

    Keys are ``(index, epoch, batch, slot)``: the augmentation of a sample is drawn from a generator
    seeded by ``(seed, epoch, batch, slot)``, so a resumed run draws exactly what an uninterrupted
    one would, with any number of loader workers.
    """

    def __init__(self, sets: list[CocoKeypoints], cfg):
        self.sets = sets
        self.cfg = cfg
        self.sizes = [len(s) for s in sets]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        sk = spinetrack37()
        self.swap, self.names = np.asarray(sk.swap), sk.names

    def __len__(self) -> int:
        return int(sum(self.sizes))

    def locate(self, index: int) -> tuple[CocoKeypoints, int]:
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sets[d], int(index - self.offsets[d])

    def stage(self, epoch: int) -> int:
        from .augment import stage_of_epoch

        return stage_of_epoch(epoch, self.cfg.train.epochs, self.cfg.augment.switch)

    def augmented(self, index: int, epoch: int, batch: int = 0, slot: int = 0):
        """The :class:`~simspine.train.augment.Augmented` sample ``index`` of ``epoch``'s stage."""
        from .augment import augment

        ds, i = self.locate(index)
        st = getattr(self.cfg.augment, f"stage{self.stage(epoch)}")
        rng = np.random.default_rng(np.random.SeedSequence([self.cfg.train.seed & 0xFFFFFFFF, epoch, batch, slot]))
        H, W = self.cfg.model.input_size
        kp = ds.keypoints[i]
        return augment(ds.image(i), kp[:, :2], kp[:, 2] > 0, ds.boxes[i], st, (W, H), rng, self.swap, self.names)

    def __getitem__(self, key):
        from .crop import simcc_targets
        from .model import normalise_crops

        index, epoch, batch, slot = key
        a = self.augmented(index, epoch, batch, slot)
        H, W = self.cfg.model.input_size
        tx, ty, w = simcc_targets(a.xy, a.visible, (W, H), self.cfg.model.split_ratio, tuple(self.cfg.loss.sigma))
        return normalise_crops(a.crop[None])[0], tx, ty, w


class KeyedBatches:
    """A batch sampler's index lists as ``(index, epoch, batch, slot)`` keys for
    :class:`CurriculumDataset` (the sampler is set to ``epoch`` first)."""

    def __init__(self, sampler, epoch: int):
        self.sampler, self.epoch = sampler, epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)
        for b, idx in enumerate(self.sampler):
            yield [(int(i), self.epoch, b, j) for j, i in enumerate(idx)]


def eval_crops(ds: CocoKeypoints, input_hw: tuple[int, int], indices) -> tuple[np.ndarray, list]:
    """Un-augmented crops (n, H, W, 3) of samples ``indices`` from their annotated boxes (the
    detect backend's crop) and each crop's (centre, size) for decoding."""
    from simspine.detect.spinepose_backend import warp_matrix

    from .crop import box_center_size, warp_crop

    H, W = input_hw
    crops, cs = [], []
    for i in indices:
        c, s = box_center_size(ds.boxes[i], (W, H))
        crops.append(warp_crop(ds.image(i), warp_matrix(c, s, (W, H)), (W, H)))
        cs.append((c, s))
    return np.stack(crops), cs
