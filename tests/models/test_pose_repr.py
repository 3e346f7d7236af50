"""Pose vectors: layout, round trip to full-skeleton motion and PoseFrames, contacts, resampling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.models import pose_repr as P
from engine.skeleton import rotations as R

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))  # shared test motion
from dance_helpers import stepping_motion


def test_layout_sizes() -> None:
    assert len(P.MODEL_JOINTS) == 21
    assert P.LOWER_DIM == 61 and P.UPPER_DIM == 72
    assert slice(57, 61) == P.CONTACT_SLICE
    skel = P.metric_cmu_skeleton()
    # Metric scale: rest extent (foot end sites to eyes) is 1.60 m.
    assert skel.height() == pytest.approx(P.CMU_REST_EXTENT_M, rel=1e-4)


def test_round_trip_keeps_model_joints_and_rests_the_others() -> None:
    m = stepping_motion(3.0, 30.0, 100.0, seed=1)
    up, low = P.motion_to_vectors(m)
    assert up.shape == (m.n_frames, 72) and low.shape == (m.n_frames, 61)
    back = P.vectors_to_motion(up, low, m.skeleton, fps=30.0, start_xz=(m.root_pos[0, 0], m.root_pos[0, 2]))
    idx = P.model_joint_indices(m.skeleton)
    np.testing.assert_allclose(back.rot[:, idx], m.rot[:, idx], atol=1e-5)
    dropped = np.setdiff1d(np.arange(m.skeleton.num_joints), idx)
    np.testing.assert_allclose(back.rot[:, dropped], np.broadcast_to(np.eye(3), back.rot[:, dropped].shape))
    # Root height exact; horizontal position re-integrated from velocities (first step is copied).
    np.testing.assert_allclose(back.root_pos[:, 1], m.root_pos[:, 1], atol=1e-6)
    np.testing.assert_allclose(back.root_pos[1:, 0] - back.root_pos[:-1, 0], np.diff(m.root_pos[:, 0]), atol=1e-6)


def test_contacts_follow_foot_height_and_speed() -> None:
    t = 60
    pts = np.zeros((t, 4, 3))
    pts[:, :, 1] = 0.02
    pts[20:40, 0, 1] = 0.3  # right ankle lifted
    pts[:, 1, 0] = np.arange(t) * 0.05  # right toe sliding at 1.5 m/s at floor level
    c = P.foot_contacts(pts, fps=30.0, floor=np.zeros(4))
    assert c[:20, 0].all() and not c[21:39, 0].any() and c[41:, 0].all()
    assert not c[:, 1].any()  # moving too fast to be a contact
    assert c[:, 2].all() and c[:, 3].all()


def test_pose_frames_are_unit_quaternions_for_every_joint() -> None:
    m = stepping_motion(1.0, 30.0, 90.0)
    frames = P.motion_to_pose_frames(m, performer=3, start_frame=10, with_positions=True)
    assert len(frames) == m.n_frames
    f = frames[5]
    assert f.performer == 3 and f.frame_index == 15 and f.skeleton == "cmu"
    assert f.rotations.shape == (m.skeleton.num_joints, 4)
    np.testing.assert_allclose(np.linalg.norm(f.rotations, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(R.quat_to_matrix(f.rotations), m.rot[5], atol=1e-5)
    assert f.positions is not None and f.positions.shape == (m.skeleton.num_joints, 3)


def test_pose_frames_back_to_vectors() -> None:
    m = stepping_motion(1.0, 30.0, 90.0, seed=5)
    up, low = P.motion_to_vectors(m)
    back = P.pose_frames_to_motion(P.motion_to_pose_frames(m))
    up2, low2 = P.motion_to_vectors(back)
    np.testing.assert_allclose(up2, up, atol=1e-5)
    np.testing.assert_allclose(low2, low, atol=1e-5)
    with pytest.raises(ValueError, match="no pose frames"):
        P.pose_frames_to_motion([])


def test_resample_identity_and_half_rate() -> None:
    m = stepping_motion(2.0, 60.0, 100.0)
    same = P.resample_motion(m, np.arange(m.n_frames, dtype=float), 60.0)
    np.testing.assert_allclose(same.rot, m.rot, atol=1e-6)
    half = P.resample_motion(m, np.arange(0, m.n_frames, 2.0), 30.0)
    assert half.fps == 30.0 and half.n_frames == (m.n_frames + 1) // 2
    np.testing.assert_allclose(half.rot, m.rot[::2], atol=1e-6)


def test_bad_vector_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="expected upper"):
        P.vectors_to_motion(np.zeros((4, 70)), np.zeros((4, 61)))


def test_fk_layout_closed_under_parents() -> None:
    parents, offsets, names = P.model_fk_layout()
    assert len(parents) == len(names) == offsets.shape[0] == 23
    assert parents[0] == -1 and all(0 <= p < i for i, p in enumerate(parents) if i)
    assert names[-2:] == ["rFoot_toe", "lFoot_toe"]


def test_mirror_is_a_reflection_of_positions() -> None:
    m = stepping_motion(2.0, 30.0, 100.0, seed=4)
    m.rot[:, m.skeleton.index("rShldr")] = R.euler_to_matrix(np.array([10.0, 40.0, -20.0]), "ZXY")  # asymmetric
    up, low = P.motion_to_vectors(m)
    mu, ml = P.mirror_vectors(up, low)
    a = P.motion_positions(P.vectors_to_motion(up, low))
    b = P.motion_positions(P.vectors_to_motion(mu, ml))
    names = m.skeleton.joint_names
    idx = P.model_joint_indices(m.skeleton)
    for j in idx:
        n = names[j]
        k = names.index({"r": "l", "l": "r"}[n[0]] + n[1:]) if n[0] in "rl" and n != "rightEye" else j
        # 1 cm: the CMU rest skeleton is symmetric except for the head's 2.6 mm x offset.
        np.testing.assert_allclose(b[:, k], a[:, j] * np.array([-1.0, 1.0, 1.0]), atol=1e-2)
    np.testing.assert_array_equal(ml[:, P.CONTACT_SLICE], low[:, P.CONTACT_SLICE][:, [2, 3, 0, 1]])
    u2, l2 = P.mirror_vectors(mu, ml)
    np.testing.assert_allclose(u2, up, atol=1e-6)
    np.testing.assert_allclose(l2, low, atol=1e-6)


def test_lock_feet_stops_contact_feet_sliding() -> None:
    m = stepping_motion(3.0, 30.0, 100.0, seed=2)
    up, low = P.motion_to_vectors(m)
    low = low.copy()
    low[:, 0] += 0.8  # the root glides sideways at 0.8 m/s while the legs swing: skating
    low[:, P.CONTACT_SLICE] = 0.0
    low[30:60, 57:59] = 1.0  # right ankle and toe planted for one second
    fixed = P.lock_feet(up, low)
    pts = P.foot_points(P.metric_cmu_skeleton(), *_root_and_rot(up, fixed))
    drift = np.linalg.norm(np.diff(pts[30:60, :2][..., [0, 2]].mean(axis=1), axis=0), axis=-1) * 30.0
    assert drift.max() < 1e-6  # the mean of the planted points does not move
    np.testing.assert_array_equal(fixed[:30], low[:30])  # frames without contact are untouched
    np.testing.assert_array_equal(fixed[:, 1:2], low[:, 1:2])


def _root_and_rot(up: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mo = P.vectors_to_motion(up, low)
    return mo.root_pos, mo.rot


def test_foot_points_equal_the_full_skeleton_fk() -> None:
    from engine.skeleton.skeleton import forward_kinematics_full

    skel = P.metric_cmu_skeleton()
    rng = np.random.default_rng(0)
    rot = R.rot6d_to_matrix(rng.normal(size=(5, skel.num_joints, 6)))
    root = rng.normal(size=(5, 3))
    pos, wrot = forward_kinematics_full(skel, root, rot)
    expect = []
    for name, end in P.CONTACT_POINTS:
        j = skel.index(name)
        expect.append(pos[:, j] + (wrot[:, j] @ skel.end_sites[j] if end else 0.0))
    assert np.array_equal(P.foot_points(skel, root, rot), np.stack(expect, axis=1))


def test_locked_root_velocity_is_lock_feet_batched() -> None:
    """The batched rule (beat guidance's text term locks its candidates with it) gives what ``lock_feet`` gives,
    clip by clip, from the contact points' root-relative positions."""
    skel = P.metric_cmu_skeleton()
    clips = []
    for seed in range(3):
        up, low = P.motion_to_vectors(stepping_motion(0.5, 30.0, 100.0, seed=seed))
        low = low[:5].copy()
        low[:, 0] += 0.6
        low[:, P.CONTACT_SLICE] = (np.random.default_rng(seed).random((5, 4)) > 0.5).astype(np.float32)
        clips.append((up[:5], low))
    feet = []
    for up, low in clips:
        root = np.zeros((5, 3))
        root[:, 1] = low[:, 1]
        feet.append(P.foot_points(skel, root, P.vectors_to_motion(up, low, skel).rot)[..., [0, 2]])
    got = P.locked_root_velocity(np.stack(feet), np.stack([lo[:, P.CONTACT_SLICE] for _, lo in clips]),
                                 np.stack([lo[:, [0, 2]] for _, lo in clips]))
    for (up, low), g in zip(clips, got, strict=True):
        want = P.lock_feet(up, low)[:, [0, 2]]
        np.testing.assert_allclose(g, want, atol=1e-6)
        assert np.array_equal(g[0], low[0, [0, 2]])  # the first frame has nothing to hold still against
