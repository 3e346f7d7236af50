"""Causal in-betweening: the pinned pose exactly at its frame, speed-limited approach and release."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models.inbetween import InBetweener, InBetweenState, PoseTarget, joint_mask
from engine.models.pose_repr import metric_cmu_skeleton
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import forward_kinematics

SKEL = metric_cmu_skeleton()
J = SKEL.num_joints


def _dance(n: int = 150, seed: int = 0, still: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random joint rotations (or one still pose) and a root at 1 m."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None] / 30.0
    amp = rng.uniform(0.1, 0.5, (1, J, 3)) * (0.0 if still else 1.0)
    aa = amp * np.sin(2 * np.pi * rng.uniform(0.3, 1.0, (1, J, 3)) * t + rng.uniform(0, 6, (1, J, 3)))
    aa[:, 0, 1] += 0.8 * np.arange(n) / 30.0  # the dancer turns slowly
    root = np.zeros((n, 3))
    root[:, 1] = 1.0
    return root, R.axis_angle_to_quat(aa)


def _target(frame: int, joints: str = "all", seed: int = 5) -> PoseTarget:
    rng = np.random.default_rng(seed)
    q = R.axis_angle_to_quat(rng.uniform(-0.8, 0.8, (J, 3)))
    return PoseTarget(frame=frame, root_y=0.8, quat=q, joints=joints)


def _run(ib: InBetweener, st: InBetweenState, root: np.ndarray, quat: np.ndarray, chunk: int = 4):
    root, quat = root.copy(), quat.copy()
    for f in range(0, len(root), chunk):
        ib.apply(st, f, root[f : f + chunk], quat[f : f + chunk])
    return root, quat


def _pos(root: np.ndarray, quat: np.ndarray) -> np.ndarray:
    return forward_kinematics(SKEL, root, R.quat_to_matrix(quat))


def test_the_pose_is_reached_exactly_at_its_frame_in_the_dancers_heading() -> None:
    ib = InBetweener(SKEL)
    root, quat = _dance(200)
    st = InBetweenState()
    tgt = _target(80)
    st.add(tgt)
    r2, q2 = _run(ib, st, root, quat)
    want = ib.target_pose(tgt, quat[80])
    p_out = _pos(r2[80:81] * [0, 1, 0], q2[80:81])[0]
    p_want = _pos(np.array([[0.0, 0.8, 0.0]]), want[None])[0]
    assert np.abs(p_out - p_want).max() < 1e-6
    # the heading is the dancer's, the tilt the target's
    fwd = R.quat_to_matrix(q2[80, 0])[:, 2]
    gen = R.quat_to_matrix(quat[80, 0])[:, 2]
    assert np.arctan2(fwd[0], fwd[2]) == pytest.approx(np.arctan2(gen[0], gen[2]), abs=1e-6)
    # untouched long before, back to the generated dance after the release
    assert np.allclose(q2[:15], quat[:15]) and np.allclose(r2[:15], root[:15])
    assert np.allclose(q2[145:], quat[145:]) and not st.targets


def test_the_blend_adds_at_most_the_speed_budget() -> None:
    ib = InBetweener(SKEL, speed_budget_ms=1.5)
    root, quat = _dance(still=True)
    quat[:, 0] = quat[0, 0]  # a pose held still: every bit of speed comes from the blend
    st = InBetweenState()
    st.add(_target(70))
    r2, q2 = _run(ib, st, root, quat)
    speed = np.linalg.norm(np.diff(_pos(r2, q2), axis=0), axis=-1) * 30.0
    assert speed.max() > 0.5  # it moved
    assert speed.max() <= 1.5 * 1.1  # (smoothstep's slope over a discrete grid: a few % over)
    assert st.rushed == 0


def test_upper_body_targets_leave_the_legs_and_root_alone() -> None:
    ib = InBetweener(SKEL)
    root, quat = _dance()
    st = InBetweenState()
    st.add(_target(60, "upper"))
    r2, q2 = _run(ib, st, root, quat)
    lower = ~joint_mask(SKEL, "upper")
    assert np.allclose(q2[:, lower], quat[:, lower]) and np.allclose(r2, root)
    assert not np.allclose(q2[60, ~lower], quat[60, ~lower])
    assert joint_mask(SKEL, "upper")[SKEL.index("lHand")] and joint_mask(SKEL, "lower")[SKEL.index("rFoot")]
    with pytest.raises(ValueError, match="joints"):
        joint_mask(SKEL, "arms")


def test_causal_any_chunking_gives_the_same_frames() -> None:
    ib = InBetweener(SKEL)
    root, quat = _dance(seed=2)
    outs = []
    for chunk in (1, 4, 150):
        st = InBetweenState()
        st.add(_target(50))
        st.add(_target(110, "lower", seed=9))
        outs.append(_run(ib, st, root, quat, chunk))
    for r, q in outs[1:]:
        assert np.allclose(r, outs[0][0]) and np.allclose(q, outs[0][1])


def test_a_target_in_the_past_is_dropped_and_a_close_one_is_counted_rushed() -> None:
    ib = InBetweener(SKEL)
    root, quat = _dance()
    st = InBetweenState()
    st.add(_target(2))
    _run(ib, st, root, quat)
    st2 = InBetweenState()
    st2.add(_target(2))
    r2, q2 = root.copy(), quat.copy()
    ib.apply(st2, 10, r2[10:14], q2[10:14])  # frame 10 > 2: dropped, frames untouched
    assert not st2.targets and np.allclose(q2, quat)
    assert st.rushed == 1  # frame 2 is closer than any blend the budget allows


def test_a_joint_drifting_past_180_degrees_from_the_target_does_not_flip_the_blend() -> None:
    """The shorter arc changes sides when the generated rotation passes 180 degrees from the target; the blend
    stays on the arc it was on instead of snapping to the other side in one frame."""
    ib = InBetweener(SKEL, speed_budget_ms=0.3)  # a long blend: it crosses 180 degrees at a weight of ~0.7
    n = 120
    root = np.zeros((n, 3))
    root[:, 1] = 1.0
    quat = np.zeros((n, J, 4))
    quat[..., 0] = 1.0
    j = SKEL.index("rForeArm")
    ang = np.radians(np.linspace(150.0, 195.0, n))  # slowly through 180 degrees from the rest target
    quat[:, j] = R.axis_angle_to_quat(np.stack([ang, np.zeros(n), np.zeros(n)], axis=-1))
    tgt = PoseTarget(frame=100, root_y=1.0, quat=np.tile([1.0, 0.0, 0.0, 0.0], (J, 1)), joints="upper")
    st = InBetweenState()
    st.add(tgt)
    _, q2 = _run(ib, st, root, quat)
    step = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q2[1:, j] * q2[:-1, j], axis=-1)), 0, 1)))
    assert step.max() < 12.0  # generated motion alone turns 0.4 degrees per frame; the flip was 97
    assert np.abs(np.abs(q2[100, j, 0]) - 1.0) < 1e-9  # and the target is still reached


@pytest.mark.parametrize("joints", ["all", "lower", "upper"])
def test_apply_reports_how_much_it_pins_the_legs(joints: str) -> None:
    """The weight the staging's leg IK gives way by: the blend's own on frames it blends the legs, 1 at the target."""
    ib = InBetweener(SKEL)
    root, quat = _dance(200)
    st = InBetweenState()
    st.add(_target(80, joints))
    r2, q2 = root.copy(), quat.copy()
    legs = np.concatenate([ib.apply(st, f, r2[f : f + 4], q2[f : f + 4]) for f in range(0, 200, 4)])
    if joints == "upper":
        assert not legs.any()
        return
    assert legs[80] == 1.0 and legs[:15].max() == 0.0 and legs[145:].max() == 0.0
    moved = np.abs(q2 - quat).max(axis=(1, 2)) > 1e-9
    assert np.array_equal(legs > 0, moved)  # exactly the frames the blend changed


def _points(root: np.ndarray, quat: np.ndarray) -> np.ndarray:
    from engine.models.staging import PointFK

    return PointFK(SKEL)(root, quat)[0]


def _far_target(frame: int, joints: str = "all") -> PoseTarget:
    """A pose far from a rest pose: arms and legs swung wide (the hands travel well over a metre)."""
    q = np.tile([1.0, 0.0, 0.0, 0.0], (J, 1))
    for name, aa in (("rShldr", (0.0, 0.0, 2.6)), ("lShldr", (0.0, 0.0, -2.6)), ("rThigh", (-1.4, 0.0, 0.0)),
                     ("lThigh", (1.0, 0.0, 0.0)), ("abdomen", (0.9, 0.0, 0.0))):
        q[SKEL.index(name)] = R.axis_angle_to_quat(np.array(aa))
    return PoseTarget(frame=frame, root_y=0.9, quat=q, joints=joints)


@pytest.mark.parametrize("joints", ["all", "upper", "lower"])
def test_a_rushed_blend_never_moves_a_point_faster_than_the_bound_or_the_dance_underneath(joints: str) -> None:
    """A far pose pinned 6 frames ahead asks a blend of 9-10 m/s: the speed bound holds every point at the larger
    of its cap and that point's speed in the dance underneath (a still pose here), the output makes up the rest
    of the way on later frames and is the generated dance again once it has caught up (the dance continues)."""
    ib = InBetweener(SKEL)
    root, quat = _dance(160, still=True)
    st = InBetweenState()
    st.add(_far_target(6, joints))
    r2, q2 = _run(ib, st, root, quat)
    pts = _points(r2, q2)
    speed = np.linalg.norm(np.diff(pts, axis=0), axis=-1) * 30.0
    gen_speed = np.linalg.norm(np.diff(_points(root, quat), axis=0), axis=-1) * 30.0
    assert (speed <= np.maximum(ib.joint_cap, gen_speed) * (1 + 1e-6)).all()
    rel = pts.copy()
    rel[..., [0, 2]] -= r2[:, None, [0, 2]]
    mean = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(-1) * 30.0
    assert mean.max() <= ib.mean_cap * (1 + 1e-6)
    assert st.bounded > 0 and speed.max() > 0.8 * ib.joint_cap  # the bound did the work, at its cap
    # unbounded, the same blend goes faster than the real p99.9
    free = InBetweener(SKEL, joint_cap_ms=None, mean_cap_ms=None)
    st2 = InBetweenState()
    st2.add(_far_target(6, joints))
    r3, q3 = _run(free, st2, root, quat)
    assert (np.linalg.norm(np.diff(_points(r3, q3), axis=0), axis=-1) * 30.0).max() > 6.3
    # caught up: after the release the frames are the dance's own, and nothing is pending or lagging
    assert np.allclose(q2[-30:], quat[-30:]) and np.allclose(r2[-30:], root[-30:])
    assert not st.active


def test_the_bound_leaves_a_blend_with_time_to_spare_exact_and_lets_it_run_as_fast_as_the_dance() -> None:
    """Time enough: nothing is held back and the pose is reached exactly. And where the dance underneath moves
    faster than the cap, the blended point may move as fast as the dance does (the bound is never a brake on it)."""
    ib = InBetweener(SKEL)
    root, quat = _dance(200, still=True)
    st = InBetweenState()
    tgt = _far_target(100)
    st.add(tgt)
    r2, q2 = _run(ib, st, root, quat)
    assert st.bounded == 0 and np.allclose(q2[100], ib.target_pose(tgt, quat[100])) and r2[100, 1] == 0.9
    # a fast spin of the dance underneath (about 14 m/s at the hands): the blend is not slowed to the cap
    spin_root, spin_q = _dance(120, still=True)
    spin_q[:, 0] = R.axis_angle_to_quat(np.stack([np.zeros(120), np.arange(120) * 0.5, np.zeros(120)], axis=-1))
    st = InBetweenState()
    st.add(_target(60, "upper"))
    r4, q4 = _run(ib, st, spin_root, spin_q)
    speed = np.linalg.norm(np.diff(_points(r4, q4), axis=0), axis=-1) * 30.0
    gen = np.linalg.norm(np.diff(_points(spin_root, spin_q), axis=0), axis=-1) * 30.0
    assert gen.max() > 9.0 and (speed <= np.maximum(ib.joint_cap, gen) * (1 + 1e-6)).all()
    assert speed.max() > 9.0  # the hands spin along with the dance, as fast
    up = joint_mask(SKEL, "upper")
    assert np.allclose(q4[60, up], ib.target_pose(_target(60, "upper"), spin_q[60])[up])


def test_a_bounded_blend_gives_the_same_frames_in_any_chunking_and_after_a_copy() -> None:
    ib = InBetweener(SKEL)
    root, quat = _dance(160, still=True, seed=3)
    outs = []
    for chunk in (1, 4, 7):
        st = InBetweenState()
        st.add(_far_target(6))
        outs.append(_run(ib, st, root, quat, chunk))
        assert st.bounded > 0
    for r, q in outs[1:]:
        assert np.allclose(r, outs[0][0]) and np.allclose(q, outs[0][1])
    # a copy taken mid-way (a snapshot for a rewind) continues exactly as the original
    st = InBetweenState()
    st.add(_far_target(6))
    r2, q2 = root.copy(), quat.copy()
    ib.apply(st, 0, r2[:16], q2[:16])
    snap = st.copy()
    assert st.lagging or st.targets
    ib.apply(st, 16, r2[16:], q2[16:])
    r3, q3 = root.copy(), quat.copy()
    ib.apply(snap, 16, r3[16:], q3[16:])
    assert np.allclose(q3[16:], q2[16:]) and np.allclose(r3[16:], r2[16:])


def test_the_bound_holds_the_root_back_with_the_pose() -> None:
    """The dance moves its root 20 cm in one frame and re-solves its legs so the feet stay put (as the decoded
    dance does): a frame the bound holds back must hold the root with the pose, or the held-back legs carry the
    feet along with the root at 6 m/s where the dance's feet stand still."""
    from engine.models.staging import PointFK, leg_ik

    fk = PointFK(SKEL)
    n = 120
    root = np.zeros((n, 3))
    root[:, 1] = 0.85
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, J, 1))
    for side in "rl":  # knees a little bent
        for name, a in (("Thigh", -0.4), ("Shin", 0.8), ("Foot", -0.4)):
            quat[:, SKEL.index(side + name)] = R.axis_angle_to_quat(np.array([a, 0.0, 0.0]))
    root[40:, 0] += 0.2
    quat[40:] = leg_ik(fk, quat[40:41], fk(root[40:41], quat[40:41])[0], np.array([[[0.2, 0.0], [0.2, 0.0]]]))[0]
    gen = np.linalg.norm(np.diff(_points(root, quat), axis=0), axis=-1) * 30.0
    assert gen[39, [4, 8, 21, 22]].max() < 1e-6 and gen[39].max() > 5.9  # the feet stay, the body moves 6 m/s
    ib = InBetweener(SKEL)
    st = InBetweenState()
    st.add(_far_target(44, "upper"))
    r2, q2 = _run(ib, st, root, quat)
    assert st.bounded > 0
    speed = np.linalg.norm(np.diff(_points(r2, q2), axis=0), axis=-1) * 30.0
    assert (speed <= np.maximum(ib.joint_cap, gen) * (1 + 1e-6)).all(), speed[39].round(2)
