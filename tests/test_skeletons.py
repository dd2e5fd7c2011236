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


# ---- Pose2Sim layouts -> SpineTrack-37 -----------------------------------------------------------
def _pose2sim_layouts():
    import anytree
    from Pose2Sim import skeletons as p2s

    return sorted(n for n in dir(p2s) if n.isupper() and isinstance(getattr(p2s, n), anytree.Node))


#: layout -> how many of its points correspond to SpineTrack-37 points (face 5, limbs 12, head top 1, feet 6)
EXPECTED_MAPPED = {"HALPE_26": 24, "HALPE_26_LOWER": 12, "HALPE_68": 24, "HALPE_136": 24, "COCO_17": 17,
                   "COCO_133": 23, "COCO_133_WRIST": 23, "BODY_25": 23, "BODY_25B": 24, "BODY_135": 24,
                   "BLAZEPOSE": 21, "COCO": 17, "MPII": 12, "HAND_21": 0, "FACE_106": 0, "ANIMAL2D_17": 0}
EXPECTED_COUNT = {"HALPE_26": 26, "HALPE_26_LOWER": 26, "HALPE_68": 68, "HALPE_136": 136, "COCO_17": 17,
                  "COCO_133": 133, "COCO_133_WRIST": 133, "BODY_25": 25, "BODY_25B": 25, "BODY_135": 135,
                  "BLAZEPOSE": 33, "COCO": 18, "MPII": 15, "HAND_21": 21, "FACE_106": 106, "ANIMAL2D_17": 17}


def test_every_pose2sim_skeleton_is_known():
    assert set(_pose2sim_layouts()) == set(EXPECTED_MAPPED)


@pytest.mark.parametrize("layout", sorted(EXPECTED_MAPPED))
def test_every_pose2sim_skeleton_maps_to_spinetrack(layout):
    import anytree
    from Pose2Sim import skeletons as p2s

    from simspine.skeletons import (
        POSE2SIM_TO_SPINETRACK,
        SAME_NAME_OTHER_POINT,
        layout_to_spinetrack,
        model_marker_names,
        pose2sim_layout,
        pose2sim_to_spinetrack,
    )

    name, names = pose2sim_layout(layout.lower())  # any case
    assert name == layout and len(names) == EXPECTED_COUNT[layout] and len(set(names)) == len(names)
    # every point Pose2Sim's tree names has that name here (case aside: BlazePose's "Lknee")
    for node in anytree.PreOrderIter(getattr(p2s, layout)):
        if node.id is not None:
            assert names[node.id].lower() == node.name.lower(), (layout, node.id)
    table = pose2sim_to_spinetrack(layout)
    st = spinetrack37()
    assert len(table) == EXPECTED_MAPPED[layout] == len(POSE2SIM_TO_SPINETRACK[layout])
    for i, j in table.items():
        assert names[i] == st.names[j]  # the corresponding point carries the SpineTrack-37 name
        assert st.names[j] not in SAME_NAME_OTHER_POINT
    assert sorted(model_marker_names(names, layout), key=st.index) == sorted(
        (st.names[j] for j in table.values()), key=st.index)
    # points land in their SpineTrack-37 slots, NaN elsewhere
    pts = np.arange(len(names) * 2, dtype=float).reshape(len(names), 2)
    out = layout_to_spinetrack(pts, layout)
    assert out.shape == (37, 2) and np.isfinite(out).all(-1).sum() == len(table)
    for i, j in table.items():
        assert np.array_equal(out[j], pts[i])


def test_pose2sim_layout_details():
    from simspine.skeletons import pose2sim_layout, pose2sim_layout_name, pose2sim_to_spinetrack

    st = spinetrack37()
    # HALPE_26 is SpineTrack-37's first 26 points; its eyes and ears are mapped, Hip and Neck are not
    _, halpe = pose2sim_layout("Body_with_feet")
    assert halpe == st.names[:26]
    t = pose2sim_to_spinetrack("HALPE_26")
    assert all(t[st.index(n)] == st.index(n) for n in ("LEye", "REye", "LEar", "REar", "Head"))
    assert st.index("Hip") not in t and st.index("Neck") not in t
    # BODY_25: the eyes and ears sit at 15-18 and Neck (1) / CHip (8) are not SpineTrack points
    _, b25 = pose2sim_layout("body_25")
    t = pose2sim_to_spinetrack("BODY_25")
    assert {b25[i] for i in (15, 16, 17, 18)} == {"REye", "LEye", "REar", "LEar"} and 1 not in t and 8 not in t
    assert t[15] == st.index("REye") and t[14] == st.index("LAnkle")
    # BlazePose: lower-case 'Lknee' of Pose2Sim is LKnee; eye corners and fingers are not mapped
    _, bp = pose2sim_layout("BLAZEPOSE")
    t = pose2sim_to_spinetrack("blazepose")
    assert bp[25] == "LKnee" and t[25] == st.index("LKnee") and t[7] == st.index("LEar") and 1 not in t
    # OpenPose COCO-18 files, or Pose2Sim's 14-point COCO
    assert len(pose2sim_to_spinetrack("COCO", 14)) == 13 and len(pose2sim_to_spinetrack("COCO", 18)) == 17
    assert pose2sim_layout_name("Whole_body") == "COCO_133" and pose2sim_layout_name("nonsense") is None
    with pytest.raises(InputError, match="skeleton BODY_25 has 25 keypoints but the files hold 26"):
        pose2sim_layout("BODY_25", 26)
    with pytest.raises(InputError, match="unknown Pose2Sim layout 'FOO'"):
        pose2sim_layout("FOO")
