"""Batch samplers for mixed-dataset training (paper §4.4, Fig. 5: per-batch mixing vs per-epoch alternation).

Both samplers yield lists of indices into a ``torch.utils.data.ConcatDataset`` built from datasets
of ``sizes`` in that order (dataset ``d`` owns indices ``offset[d] .. offset[d] + sizes[d] - 1``);
pass them to ``DataLoader(concat, batch_sampler=...)``.

* :class:`MixedBatchSampler` — per-batch (PB) mixing, the paper's default: every batch holds a
  fixed number of samples from each dataset (equal shares unless ``shares`` says otherwise).
* :class:`AlternatingEpochSampler` — per-epoch (PE) alternation: epoch ``e`` draws whole batches
  from dataset ``e % len(sizes)`` only.

Each dataset is drawn *without replacement, cycling*: a fresh random permutation of its samples is
used up before any sample repeats (so a small dataset mixed with a large one is seen completely,
then reshuffled). The order is a pure function of ``(seed, epoch)``: call ``set_epoch(e)`` before
each epoch, as with ``DistributedSampler``. Needs torch (``pip install -e ".[lift]"``); import this
module only where torch is installed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

__all__ = ["MixedBatchSampler", "AlternatingEpochSampler", "batch_counts"]


def _check_sizes(sizes: Sequence[int], batch_size: int) -> list[int]:
    sizes = [int(s) for s in sizes]
    if not sizes:
        raise ValueError("sampler: sizes is empty (need at least one dataset)")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"sampler: every dataset needs at least one sample, got sizes {sizes}")
    if int(batch_size) <= 0:
        raise ValueError(f"sampler: batch_size must be positive, got {batch_size}")
    return sizes


def batch_counts(batch_size: int, shares: Sequence[float]) -> list[int]:
    """Samples per dataset in one batch of ``batch_size`` for relative ``shares`` (summing to anything > 0).

    Largest-remainder rounding: the counts sum to ``batch_size`` exactly and each is within 1 of
    ``batch_size * share / sum(shares)``; ties go to the earlier dataset (deterministic).
    """
    w = np.asarray(shares, dtype=float)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"sampler: shares must be non-negative finite numbers with a positive sum, got {list(shares)}")
    exact = batch_size * w / w.sum()
    counts = np.floor(exact).astype(int)
    left = batch_size - int(counts.sum())
    # stable sort on the negated remainder: biggest remainders first, earlier dataset on ties
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:left]] += 1
    return [int(c) for c in counts]


class _Cycler:
    """Indices 0..n-1 in random permutations, one used up before the next is drawn (no repeat before full coverage)."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.rng = n, rng
        self.perm = rng.permutation(n)
        self.pos = 0

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if self.pos == self.n:
                self.perm, self.pos = self.rng.permutation(self.n), 0
            step = min(k, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + step])
            self.pos += step
            k -= step
        return np.concatenate(out) if out else np.empty(0, dtype=int)


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    # SeedSequence mixes (seed, epoch, stream) so neighbouring seeds/epochs give unrelated orders
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(stream)]))


class MixedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Each batch holds `shares` of samples from each dataset (equal by default), indices into a ConcatDataset of `sizes` in order.

    ``sizes``: number of samples of each dataset, in ConcatDataset order. ``batch_size``: samples per
    batch, split between the datasets by :func:`batch_counts` (the same split in every batch; a
    dataset whose share rounds to 0 samples is never drawn). ``num_batches``: batches per epoch;
    default: enough for every dataset with a non-zero count to be seen completely once
    (``max(ceil(size / count))``), smaller datasets cycling. The samples of a batch are shuffled
    together so the datasets are not in blocks.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, *, shares: Sequence[float] | None = None,
                 num_batches: int | None = None, seed: int = 0):
        self.sizes = _check_sizes(sizes, batch_size)
        self.batch_size = int(batch_size)
        self.shares = [1.0] * len(self.sizes) if shares is None else [float(s) for s in shares]
        if len(self.shares) != len(self.sizes):
            raise ValueError(f"sampler: {len(self.shares)} shares for {len(self.sizes)} datasets")
        self.counts = batch_counts(self.batch_size, self.shares)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        if num_batches is None:
            num_batches = max(-(-s // c) for s, c in zip(self.sizes, self.counts, strict=True) if c > 0)
        if int(num_batches) <= 0:
            raise ValueError(f"sampler: num_batches must be positive, got {num_batches}")
        self.num_batches = int(num_batches)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` on the next iteration (same ``(seed, epoch)`` → same batches)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        cyclers = [_Cycler(n, _rng(self.seed, self.epoch, d)) for d, n in enumerate(self.sizes)]
        mix = _rng(self.seed, self.epoch, len(self.sizes))
        for _ in range(self.num_batches):
            parts = [off + cyc.take(c) for off, cyc, c in zip(self.offsets, cyclers, self.counts, strict=True) if c > 0]
            batch = np.concatenate(parts)
            yield [int(i) for i in batch[mix.permutation(batch.size)]]


class AlternatingEpochSampler(torch.utils.data.Sampler[list[int]]):
    """Epoch e draws whole batches from dataset e % len(sizes) (per-epoch alternation).

    ``sizes``: samples per dataset in ConcatDataset order. ``num_batches``: batches per epoch;
    default: one pass over that epoch's dataset (``ceil(size / batch_size)``, or ``floor`` with
    ``drop_last``). A fixed ``num_batches`` larger than a dataset's pass cycles through it without
    replacement (every sample before any repeat). With ``drop_last`` every batch is full; without
    it the last batch of a pass may be short.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, *, num_batches: int | None = None,
                 seed: int = 0, drop_last: bool = False):
        self.sizes = _check_sizes(sizes, batch_size)
        self.batch_size = int(batch_size)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        if num_batches is not None and int(num_batches) <= 0:
            raise ValueError(f"sampler: num_batches must be positive, got {num_batches}")
        if drop_last and num_batches is None and min(self.sizes) < self.batch_size:
            raise ValueError(f"sampler: drop_last with batch_size {batch_size} leaves no batch for a "
                             f"dataset of {min(self.sizes)} samples")
        self.num_batches = None if num_batches is None else int(num_batches)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use dataset ``epoch % len(sizes)`` and that epoch's order on the next iteration."""
        self.epoch = int(epoch)

    @property
    def dataset_index(self) -> int:
        """The dataset the current epoch draws from."""
        return self.epoch % len(self.sizes)

    def __len__(self) -> int:
        if self.num_batches is not None:
            return self.num_batches
        n = self.sizes[self.dataset_index]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        d = self.dataset_index
        n, off = self.sizes[d], int(self.offsets[d])
        cyc = _Cycler(n, _rng(self.seed, self.epoch, d))
        if self.num_batches is None:
            # one pass over the permutation; the remainder is a short batch unless drop_last
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                if self.drop_last and stop - start < self.batch_size:
                    break
                yield [off + int(i) for i in cyc.perm[start:stop]]
            return
        for _ in range(self.num_batches):
            yield [off + int(i) for i in cyc.take(self.batch_size)]
