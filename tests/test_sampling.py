"""Mixed-dataset samplers (simspine.sampling): counts per batch, coverage, determinism, set_epoch."""

from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simspine.sampling import AlternatingEpochSampler, MixedBatchSampler, batch_counts  # noqa: E402


def _dataset_of(i, sizes):
    return int(np.searchsorted(np.cumsum(sizes), i, side="right"))


def test_batch_counts_largest_remainder():
    assert batch_counts(8, [1, 1]) == [4, 4]
    assert batch_counts(7, [1, 1]) == [4, 3]          # tie: the earlier dataset gets the extra one
    assert batch_counts(10, [0.98, 0.02]) == [10, 0]  # 0.2 rounds to 0
    assert batch_counts(10, [1, 2, 2]) == [2, 4, 4]
    assert batch_counts(64, [0.3, 0.7]) == [19, 45]   # 19.2 / 44.8
    with pytest.raises(ValueError):
        batch_counts(4, [0, 0])


def test_mixed_equal_counts_per_batch_and_coverage():
    sizes = [10, 37]  # small, large
    s = MixedBatchSampler(sizes, 8, seed=3)
    batches = list(s)
    # default length: the large dataset seen once at 4 per batch -> ceil(37/4) = 10 batches
    assert len(s) == len(batches) == 10
    for b in batches:
        assert len(b) == 8
        per = Counter(_dataset_of(i, sizes) for i in b)
        assert per == {0: 4, 1: 4}
        assert all(0 <= i < 47 for i in b)
    small = [[i for i in b if i < 10] for b in batches]
    large = [i for b in batches for i in b if i >= 10]
    # 40 draws from the small dataset (4 per batch): 4 full permutations, each sample exactly
    # 4 times, none repeated before all were seen: 5 batches = 20 draws = each sample twice
    assert Counter(i for b in small for i in b) == {i: 4 for i in range(10)}
    assert len(set(small[0] + small[1])) == 8
    assert Counter(i for b in small[:5] for i in b) == {i: 2 for i in range(10)}
    # the large one: 40 draws, all 37 samples seen (3 repeats from the next permutation)
    assert set(large) == set(range(10, 47)) and len(large) == 40
    assert max(Counter(large).values()) == 2


def test_mixed_shares_and_num_batches():
    sizes = [100, 50, 20]
    s = MixedBatchSampler(sizes, 10, shares=[0.5, 0.3, 0.2], num_batches=7)
    batches = list(s)
    assert len(batches) == 7
    for b in batches:
        assert Counter(_dataset_of(i, sizes) for i in b) == {0: 5, 1: 3, 2: 2}
    with pytest.raises(ValueError):
        MixedBatchSampler(sizes, 10, shares=[1, 1])


def test_mixed_deterministic_and_set_epoch_changes_order():
    a = MixedBatchSampler([30, 40], 6, seed=5)
    b = MixedBatchSampler([30, 40], 6, seed=5)
    assert list(a) == list(b)
    assert list(a) == list(a)                 # iterating again without set_epoch repeats the order
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first
    assert sorted(map(sorted, second)) != sorted(map(sorted, first))
    b.set_epoch(1)
    assert list(b) == second                  # same (seed, epoch) -> same batches
    c = MixedBatchSampler([30, 40], 6, seed=6)
    assert list(c) != first


def test_mixed_works_with_dataloader():
    ds = torch.utils.data.ConcatDataset([
        torch.utils.data.TensorDataset(torch.zeros(12)),
        torch.utils.data.TensorDataset(torch.ones(5)),
    ])
    loader = torch.utils.data.DataLoader(ds, batch_sampler=MixedBatchSampler([12, 5], 4, seed=0))
    values = [batch[0] for batch in loader]
    assert len(values) == 6  # ceil(12 / 2)
    for v in values:
        assert float(v.sum()) == 2.0 and v.numel() == 4  # two from each dataset


def test_alternating_epochs_draw_one_dataset_each():
    sizes = [10, 25]
    s = AlternatingEpochSampler(sizes, 4, seed=1)
    ep0 = list(s)
    assert len(s) == len(ep0) == 3                      # ceil(10 / 4)
    assert [len(b) for b in ep0] == [4, 4, 2]
    assert sorted(i for b in ep0 for i in b) == list(range(10))
    s.set_epoch(1)
    ep1 = list(s)
    assert len(s) == len(ep1) == 7                      # ceil(25 / 4)
    assert sorted(i for b in ep1 for i in b) == list(range(10, 35))
    s.set_epoch(2)
    ep2 = list(s)
    assert sorted(i for b in ep2 for i in b) == list(range(10))
    assert ep2 != ep0                                   # a new order for a new epoch
    s.set_epoch(0)
    assert list(s) == ep0                               # deterministic per (seed, epoch)


def test_alternating_drop_last_and_fixed_batches_cycle():
    s = AlternatingEpochSampler([10, 25], 4, drop_last=True)
    assert [len(b) for b in s] == [4, 4]
    s = AlternatingEpochSampler([10, 25], 4, num_batches=6, seed=2)
    drawn = [i for b in s for i in b]
    assert len(drawn) == 24 and all(len(b) == 4 for b in s)
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:20]) == list(range(10))
    assert Counter(drawn)[drawn[20]] == 3                # repeats only after two full passes
    with pytest.raises(ValueError):
        AlternatingEpochSampler([3, 10], 4, drop_last=True)
