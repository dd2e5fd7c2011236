import numpy as np
import pytest

from simspine.errors import InputError
from simspine.skeletons import (
    H36M_TO_SPINETRACK,
    H36M_UNUSED,
    h36m17,
    h36m32,
    h36m_to_spinetrack,
    spinetrack37,
    spinetrack37_info,
)


def test_spinetrack37_layout():
    sk = spinetrack37()
    assert len(sk) == 37
    assert sk.names[19] == "Hip" and sk.parents[19] == -1
    # parents form a tree rooted at Hip: every chain reaches the root
    for i in range(37):
        seen, j = set(), i
        while j != -1:
            assert j not in seen
            seen.add(j)
            j = sk.parents[j]
    # swaps are involutions and pair L/R names
    for i, j in enumerate(sk.swap):
        assert sk.swap[j] == i
        if i != j:
            assert sk.names[i][1:] == sk.names[j][1:] and {sk.names[i][0], sk.names[j][0]} == {"L", "R"}
    assert list(sk.subset("spine")) == [36, 35, 18, 30, 29, 28, 27, 26, 19]
    assert list(sk.subset("body")) == list(range(17))
    assert sorted(np.concatenate([sk.subset(r) for r in ("lumbar", "thoracic", "cervical")])) == sorted(
        [19, 26, 27, 28, 29, 30, 31, 32, 33, 34, 0, 17, 18, 35, 36])
    assert sk.oks_sigmas[0] == pytest.approx(0.026)


def test_flip_lr_twice_is_identity():
    sk = spinetrack37()
    x = np.random.default_rng(0).normal(size=(5, 37, 2))
    assert np.array_equal(sk.flip_lr(sk.flip_lr(x)), x)
    assert np.array_equal(sk.flip_lr(x)[:, sk.index("LHip")], x[:, sk.index("RHip")])


def test_spinetrack_info_has_15_virtual_markers():
    info = spinetrack37_info()
    assert len(info.virtual_markers) == 15
    assert info.virtual_markers["Spine_01"].body == "lumbar5"
    assert info.ik_weights["LShoulder"] == 2


def test_unknown_name_is_clear():
    with pytest.raises(InputError, match="unknown keypoint name 'Pelvis'"):
        spinetrack37().index("Pelvis")


def test_h36m_layouts_and_mapping():
    h32, h17 = h36m32(), h36m17()
    assert len(h32) == 32 and len(h17) == 17
    assert h32.names[13] == "Thorax" and h32.names[25] == "RShoulder"
    assert h17.names[h17.swap[h17.index("LWrist")]] == "RWrist"
    assert len(H36M_TO_SPINETRACK) == 12 and not set(H36M_UNUSED) & set(H36M_TO_SPINETRACK)
    j = np.arange(32 * 3, dtype=float).reshape(32, 3)
    st = h36m_to_spinetrack(j)
    sk = spinetrack37()
    assert np.array_equal(st[sk.index("LAnkle")], j[8]) and np.array_equal(st[sk.index("RShoulder")], j[25])
    assert np.isnan(st[sk.index("Hip")]).all()
    assert np.isfinite(st).all(-1).sum() == 12
    # 17-joint input maps identically
    assert np.array_equal(h36m_to_spinetrack(j[list(range(32))][[0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]]),
                          st, equal_nan=True)
