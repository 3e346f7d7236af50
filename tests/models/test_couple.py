"""The couple kind: two performers per couple through the motion-model protocol, stepped leader first."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.models.beat_guidance import OFF, GuidanceConfig
from engine.models.couple import COUPLE_KIND, CoupleDancer
from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.gpt_dancer import DanceGenerator
from engine.models.protocol import Controls, MotionModel
from engine.models.staging import StagingConfig
from engine.models.vqvae import VQVAE, VQVAEConfig
from export.follower_backend import FollowerBackend
from export.torch_backend import TorchBackend
from tests.models.test_follower import tiny_follower

#: The follower's own steering towards its place in the tests that turn it on (couple.follower_guidance).
STEER = GuidanceConfig(candidates=8, weight=1.0, select="sample", stage_weight=3.0, stage_from=0.25)


def _couples(n: int = 2, min_dist: float = 0.3, staging: StagingConfig | None = None, context: int = 16,
             jit: bool = True, steer_m: float = 0.0) -> CoupleDancer:
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=context)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    fol = tiny_follower()
    leader = DanceGenerator(TorchBackend(gpt, capacity=n, device="cpu", jit=jit), vq, seed=0)
    follower = DanceGenerator(FollowerBackend(fol, capacity=n), vq, seed=100, guidance=STEER if steer_m else OFF)
    model = CoupleDancer(leader, follower, replace(fol.fcfg, min_root_distance_m=min_dist), staging,
                         steer_radius_m=steer_m)
    for _ in range(n):
        model.add_performer(Controls())
    return model


def _cond(model: CoupleDancer) -> np.ndarray:
    return np.zeros(model.leader.backend.config.cond_dim, np.float32)


def test_protocol_add_step_remove() -> None:
    model = _couples(2)
    proto: MotionModel = model  # the protocol's attributes, type-checked by mypy
    assert proto.kind == COUPLE_KIND and not proto.capabilities.keyframes and proto.frames_per_step == 4
    assert model.performer_ids() == [0, 1, 2, 3]
    out = model.step(_cond(model))
    assert [sf.pid for sf in out] == [0, 1, 2, 3]
    for sf in out:
        assert sf.root.shape == (4, 3) and sf.quat.shape == (4, model.n_joints, 4) and sf.step == 0
    out = model.step(_cond(model))
    assert all(sf.step == 1 for sf in out)
    assert model.controls(1).genre == 0 and model.controls(0).genre == 1  # the follower has no genre row to use
    model.controls(1).genre = 5  # a genre or text control sent to a follower is ignored, the step still runs
    model.controls(1).text = np.ones(384, np.float32)
    assert len(model.step(_cond(model))) == 4 and model.controls(1).genre == 0
    model.remove_performer(1)  # either id removes its couple
    assert model.performer_ids() == [2, 3]
    assert model.add_performer() == 4 and model.performer_ids() == [2, 3, 4, 5]
    assert [sf.pid for sf in model.step(_cond(model))] == [2, 3, 4, 5]
    assert model.couples[0].steps == 4 and model.couples[1].steps == 1
    with pytest.raises(KeyError):
        model.controls(1)
    with pytest.raises(ValueError, match="keyframes"):
        model.set_keyframe(2, 8, np.zeros(3), np.zeros((model.n_joints, 4)))
    root, quat = model.idle_pose()
    assert root.shape == (3,) and quat.shape == (model.n_joints, 4)


def test_reset_and_rewind_move_the_couple_together_once() -> None:
    model = _couples(1)
    placed = []
    for _ in range(5):
        model.step(_cond(model))
        placed.append(model.couples[0].follow_xz.copy())
    lead, fol = model.leader.get(0), model.follower.get(0)
    tokens = [(int(lead.tok_up[-3]), int(fol.tok_up[-3]))]
    model.rewind(0, 2)
    model.rewind(1, 2, root_xz=np.array([3.0, 4.0]))  # the runtime rewinds both ids in one re-plan: applied once
    assert lead.n_tokens == fol.n_tokens == 3 and model.couples[0].steps == 3
    assert (int(lead.tok_up[-1]), int(fol.tok_up[-1])) == tokens[0]
    assert np.array_equal(model.couples[0].follow_xz, placed[2])  # kept: back to where it stood after step 2
    out = model.step(_cond(model))
    assert out[0].step == out[1].step == 3
    model.keep_rewinds(0)  # nothing kept: the couple goes on from where it stands now (as output)
    model.step(_cond(model))
    model.rewind(1, 1, root_xz=np.array([3.0, 4.0]))
    assert model.couples[0].steps == 4 and np.allclose(model.couples[0].follow_xz, [3.0, 4.0])
    assert np.allclose(fol.root_xz, model.placer.to_raw_xz(1, np.array([3.0, 4.0])))  # in the follower's own frame
    model.reset(1, root_xz=np.array([1.0, -1.0]))  # the follower's id resets the couple; the leader starts there
    assert lead.n_tokens == fol.n_tokens == 0 and model.couples[0].steps == 0
    out = model.step(_cond(model))
    assert np.allclose(out[0].root[0, [0, 2]], [1.0, -1.0], atol=0.2)
    d0 = np.linalg.norm(out[1].root[0, [0, 2]] - out[0].root[0, [0, 2]])
    assert 0.3 <= d0 < 1.5  # the follower starts in front of its leader


def test_the_follower_never_comes_closer_than_the_floor() -> None:
    model = _couples(1, min_dist=0.6)
    rng = np.random.default_rng(0)
    dists = []
    for _ in range(30):
        out = model.step(rng.standard_normal(model.leader.backend.config.cond_dim).astype(np.float32))
        dists.append(np.linalg.norm(out[0].root[:, [0, 2]] - out[1].root[:, [0, 2]], axis=1))
    assert np.concatenate(dists).min() >= 0.6 - 1e-6
    assert model.describe()["couples"] == 1


def test_the_follower_is_placed_through_its_planted_feet() -> None:
    """A follower standing with both feet down is moved towards its goal by leg IK: the feet do not slide."""
    from engine.models.couple import follower_placer_config
    from engine.models.staging import FOOT_POINTS, Stager

    model = _couples(1)
    j = model.n_joints
    st = Stager(follower_placer_config(model.cfg, limit_speed=False), model.skeleton)
    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (1, 8, j, 1))  # standing still, knees bent (room to move)
    for side in "rl":
        for name, a in (("Thigh", 0.4), ("Shin", -0.8)):
            quat[..., model.skeleton.index(side + name), :] = [np.cos(a / 2), np.sin(a / 2), 0.0, 0.0]
    pts0, _ = st.fk(np.zeros(3), quat[0, 0])
    root = np.tile(np.array([0.0, -pts0[:, 1].min(), 0.0]), (1, 8, 1))  # feet on the floor
    st.set_goal(0, np.array([0.3, 0.0]), 0.0)  # 0.3 m to the side, same facing
    r, q = st.process([0], root, quat)
    pts, _ = st.fk(r[0], q[0])
    assert r[0, -1, 0] > 0.05  # the body moved towards the goal
    feet = pts[:, list(FOOT_POINTS)][:, :, [0, 2]]
    assert np.abs(feet - feet[0]).max() < 1e-6  # the planted feet stayed where they were


def test_a_goal_across_the_leader_is_reached_around_him() -> None:
    """A follower whose goal lies across its leader is led round him at the goal's distance (never through him);
    a goal on the follower's side is kept as it is."""
    from engine.models.couple import AROUND_RAD, around_leader

    lead = np.array([1.0, 2.0])
    fol = lead + np.array([0.8, 0.0])
    near = lead + np.array([0.7, 0.3])
    assert np.array_equal(around_leader(lead, fol, near, AROUND_RAD), near)
    across = lead + np.array([-0.6, 0.01])
    way = around_leader(lead, fol, across, AROUND_RAD)
    assert np.isclose(np.linalg.norm(way - lead), np.linalg.norm(across - lead))  # at the goal's distance
    bearing = np.arctan2(way[1] - lead[1], way[0] - lead[0])
    assert np.isclose(bearing, AROUND_RAD)  # turned the most allowed, the short way round (towards +z here)
    # the straight way from the follower to that point passes the leader at a partner's distance, not through him
    t = np.linspace(0.0, 1.0, 101)[:, None]
    path = fol + t * (way - fol)
    assert np.linalg.norm(path - lead, axis=1).min() > 0.4
    assert np.array_equal(around_leader(lead, lead, across, AROUND_RAD), across)  # on the leader: no bearing


def test_hold_moves_reach_for_the_nearest_wrist_and_fade_out() -> None:
    from engine.models.couple import HOLD_GRIP_M, HOLD_REACH_M, hold_moves

    lead = np.zeros((3, 23, 3))
    fol = np.zeros((3, 23, 3))
    lead[:, 16] = [0.0, 1.0, 0.0]
    lead[:, 20] = [5.0, 1.0, 0.0]  # far away: never the nearest
    fol[:, 20] = [9.0, 1.0, 9.0]  # the follower's left wrist is out of reach
    fol[:, 16, 0] = [0.1, 0.4, HOLD_REACH_M + 0.01]  # right wrist within the grip, halfway, beyond reach
    fol[:, 16, 1] = 1.0
    m = hold_moves(lead, fol)
    assert np.allclose(m[:, 1], 0.0) and np.allclose(m[[0, 2], 0], 0.0)  # within the grip or beyond reach: none
    after = fol[1, 16] + m[1, 0]
    assert m[1, 0, 0] < 0 and HOLD_GRIP_M <= np.linalg.norm(after - lead[1, 16]) < 0.4  # towards it, not past


def test_arm_ik_moves_the_wrist_and_nothing_else() -> None:
    from engine.models.staging import PointFK, arm_ik

    fk = PointFK()
    j = len(fk.joint_idx) and _couples(1).n_joints
    rng = np.random.default_rng(1)
    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (2, j, 1))
    quat[:, 1:] += 0.2 * rng.standard_normal(quat[:, 1:].shape)  # a bent pose
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    pts, _ = fk(np.zeros((2, 3)), quat)
    move = np.zeros((2, 2, 3))
    move[0, 0] = [0.05, 0.03, -0.04]  # right wrist of the first pose only
    q = arm_ik(fk, quat, pts, move)
    p2, _ = fk(np.zeros((2, 3)), q)
    assert np.allclose(p2[0, 16], pts[0, 16] + move[0, 0], atol=1e-6)
    keep = [i for i in range(23) if i not in (15, 16)]  # all but the right elbow and wrist
    assert np.allclose(p2[0, keep], pts[0, keep], atol=1e-9) and np.allclose(p2[1], pts[1])


def test_a_staged_couple_is_brought_back_on_stage() -> None:
    """A couple placed 4 m off centre: staged, its midpoint comes back towards the stage; unstaged, it stays."""
    mids = {}
    for steer in (True, False):
        model = _couples(1, staging=StagingConfig(steer=steer))
        model.reset(0, root_xz=np.array([4.0, 0.0]))
        rng = np.random.default_rng(0)
        for _ in range(30):  # 4 s
            out = model.step(rng.standard_normal(model.leader.backend.config.cond_dim).astype(np.float32))
            assert [sf.pid for sf in out] == [0, 1]
        mids[steer] = float(np.linalg.norm(0.5 * (out[0].root[-1, [0, 2]] + out[1].root[-1, [0, 2]])))
        assert model.speed_limits(1).shape == (23,) and model.speed_limits(0).shape == (23,)
    assert mids[True] < mids[False] - 1.0, mids


@pytest.mark.parametrize("steer_m", [0.0, 0.5])
def test_a_rewound_couple_continues_exactly_as_if_the_discarded_steps_never_were(steer_m: float) -> None:
    """Rewound by 3 steps and given the same random streams, a couple's next frames (both partners, staged as a pair)
    are exactly those of a couple that never made the discarded steps: both generators, both stagings, the
    placement and the follower's speed limit go back (and, with the follower steering itself to its place, the
    placement head's last output it steers by). A step of one couple (a re-plan) leaves the other alone."""
    def build() -> CoupleDancer:
        return _couples(2, staging=StagingConfig(), steer_m=steer_m)

    a, b = build(), build()
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(12, a.leader.backend.config.cond_dim)).astype(np.float32)
    for t in range(8):
        a.step(cond[t])
    for t in range(5):
        b.step(cond[t])
    a.rewind(1, 3, root_xz=np.array([9.0, 9.0]))  # either partner rewinds the couple (the position is not needed)
    a.rewind(0, 3, root_xz=np.array([9.0, 9.0]))
    for gen_a, gen_b in ((a.leader, b.leader), (a.follower, b.follower)):
        gen_a.get(0).rng.set_state(gen_b.get(0).rng.get_state())
    other = (a.leader.get(1).state.pos, a.couples[1].steps)
    assert a.step_group([1]) == [0, 1] and a.step_group([3, 0]) == [0, 1, 2, 3]
    for t in range(5, 8):
        fa, fb = a.step(cond[t], [1]), b.step(cond[t], [1])
        assert [f.pid for f in fa] == [0, 1] and all(f.step == t for f in fa)
        for x, y in zip(fa, fb, strict=True):
            np.testing.assert_allclose(x.root, y.root, atol=1e-5)
            np.testing.assert_allclose(x.quat, y.quat, atol=1e-5)
    assert (a.leader.get(1).state.pos, a.couples[1].steps) == other  # the other couple was not stepped


def test_a_couple_rewound_past_both_attention_windows_continues_exactly() -> None:
    """Past the leader's and the follower's attention windows (8 tokens each) the discarded steps overwrote the
    ring slots of both windows' oldest positions: the rewind puts them back in both GPTs' caches, so the couple's
    next frames are bit for bit those of a couple that never made the discarded steps."""
    a, b = (_couples(1, context=8, jit=False) for _ in range(2))
    cond = np.random.default_rng(1).normal(size=(16, a.leader.backend.config.cond_dim)).astype(np.float32)
    for t in range(14):
        a.step(cond[t])
    for t in range(11):
        b.step(cond[t])
    a.rewind(0, 3)
    for gen_a, gen_b in ((a.leader, b.leader), (a.follower, b.follower)):
        gen_a.get(0).rng.set_state(gen_b.get(0).rng.get_state())
    for t in range(11, 16):
        fa, fb = a.step(cond[t]), b.step(cond[t])
        for x, y in zip(fa, fb, strict=True):
            assert np.array_equal(x.root, y.root) and np.array_equal(x.quat, y.quat), (t, x.pid)
        for gen_a, gen_b in ((a.leader, b.leader), (a.follower, b.follower)):
            ra, rb = gen_a.get(0).state.row, gen_b.get(0).state.row
            assert torch.equal(gen_a.backend.k[:, ra], gen_b.backend.k[:, rb])  # type: ignore[attr-defined]
            assert torch.equal(gen_a.backend.v[:, ra], gen_b.backend.v[:, rb])  # type: ignore[attr-defined]


def _standing(model: CoupleDancer, n: int, yaw: float, xz: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames of one dancer standing still, knees bent (room for leg IK), feet on the floor: root [1, n, 3],
    quat [1, n, J, 4], facing ``yaw`` at ``xz``."""
    from engine.models.staging import PointFK, yaw_quat

    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (1, n, model.n_joints, 1))
    for side in "rl":
        for name, a in (("Thigh", 0.4), ("Shin", -0.8)):
            quat[..., model.skeleton.index(side + name), :] = [np.cos(a / 2), np.sin(a / 2), 0.0, 0.0]
    quat[..., 0, :] = yaw_quat(np.asarray(yaw))
    pts, _ = PointFK(model.skeleton)(np.zeros(3), quat[0, 0])
    root = np.tile(np.array([xz[0], -pts[:, 1].min(), xz[1]]), (1, n, 1))
    return root, quat


def test_the_floor_moves_the_follower_over_her_planted_feet() -> None:
    """A follower standing too close in front of her leader is moved out to the floor by the placement: her body
    moves, her planted feet stay where they were (leg IK), and she stays out on the next frames (the placement
    itself moved: no frame-by-frame projection of the root alone, which slid the whole body, feet included)."""
    from engine.models.couple import FLOOR_FRONT_M
    from engine.models.staging import FOOT_POINTS

    model = _couples(1, min_dist=0.2)  # the body floor applies: FLOOR_FRONT_M in front of him
    c = model.couples[0]
    c.steps, c.lead_xz, c.follow_xz = 1, np.zeros(2), np.array([0.0, 0.15])
    lead_root, lead_quat = _standing(model, 8, 0.0, (0.0, 0.0))  # facing +z
    root, quat = _standing(model, 8, np.pi, (0.0, 0.15))  # facing him, 0.15 m in front of him
    model.placer.set_goal(c.follow, np.array([0.0, FLOOR_FRONT_M]), np.pi)  # her goal: at the floor
    feet_raw, _ = model.placer.fk(root[0], quat[0])
    fr, fq = model._place([c], root, quat, lead_root, lead_quat)
    dist = np.linalg.norm(fr[0][:, [0, 2]] - lead_root[0][:, [0, 2]], axis=-1)
    assert dist.min() >= FLOOR_FRONT_M - 1e-9 and dist.max() < FLOOR_FRONT_M + 0.01  # out to the floor, no further
    assert np.all(fr[0, :, 2] > 0.0)  # on her side of him
    pts, _ = model.placer.fk(fr[0], fq[0])
    feet = pts[:, list(FOOT_POINTS)][:, :, [0, 2]]
    assert np.abs(feet - feet_raw[:, list(FOOT_POINTS)][:, :, [0, 2]]).max() < 1e-6  # planted feet did not move
    assert model.floor_frames == 1 and model.floor_slips == 0  # pushed once: the placement kept her out after
    r = model.placer.row(c.follow)
    assert np.isclose(model.placer.offset[r][1], FLOOR_FRONT_M - 0.15)  # the placement moved, not the frame


def test_a_follower_walking_into_her_leader_never_passes_through_him() -> None:
    """Her own motion walks straight through her leader: she is held at the floor on her own side of him (the
    placement keeps her out; the root-alone projection let her reappear behind him once her root passed his)."""
    from engine.models.couple import body_floor

    model = _couples(1, min_dist=0.2)
    c = model.couples[0]
    c.steps, c.lead_xz, c.follow_xz = 1, np.zeros(2), np.array([0.0, 0.6])
    n = 4
    for step in range(12):  # 1.2 m at 1 m/s towards -z, through him at the origin
        lead_root, lead_quat = _standing(model, n, 0.0, (0.0, 0.0))
        root, quat = _standing(model, n, np.pi, (0.0, 0.0))
        root[0, :, 2] = 0.6 - (step * n + np.arange(n)) / 30.0
        model.placer.set_goal(c.follow, c.follow_xz, np.pi)  # no pull: her own motion alone
        fr, _ = model._place([c], root, quat, lead_root, lead_quat)
        rel = fr[0][:, [0, 2]] - lead_root[0][:, [0, 2]]
        assert np.all(rel[:, 1] > 0.0)  # always in front of him (he faces +z): never behind, never through
        bearing = np.arctan2(rel[:, 0], rel[:, 1])
        assert np.all(np.linalg.norm(rel, axis=1) >= body_floor(bearing) - 1e-9)
        c.follow_xz = fr[0, -1, [0, 2]].copy()
    assert model.floor_frames > 0


def test_the_body_floor_is_wider_beside_and_behind_the_leader() -> None:
    from engine.models.couple import FLOOR_FRONT_M, FLOOR_SIDE_M, body_floor, floor_push

    deg = np.deg2rad(np.array([0.0, 30.0, -40.0, 65.0, -90.0, 180.0]))
    assert np.allclose(body_floor(deg), [FLOOR_FRONT_M] * 3 + [FLOOR_SIDE_M] * 3)
    assert np.all(np.diff(body_floor(np.deg2rad(np.linspace(0.0, 180.0, 50)))) >= 0.0)  # rises smoothly
    # a follower 0.2 m to her leader's right (he faces +z: right is -x) is moved straight out to the side floor
    push = floor_push(np.zeros((1, 2)), np.zeros(1), np.array([[-0.2, 0.0]]), np.array([[-1.0, 0.0]]))
    assert np.allclose(push, [[-(FLOOR_SIDE_M - 0.2), 0.0]])
    assert np.allclose(floor_push(np.zeros((1, 2)), np.zeros(1), np.array([[0.0, 0.5]]), np.zeros((1, 2))), 0.0)
    # on top of him: out the way she came from
    assert np.allclose(floor_push(np.zeros((1, 2)), np.zeros(1), np.zeros((1, 2)), np.array([[0.0, 2.0]])),
                       [[0.0, FLOOR_FRONT_M]])


def test_a_fresh_pair_starts_side_on_to_the_audience() -> None:
    model = _couples(1, staging=StagingConfig(front_deg=30.0))
    out = model.step(_cond(model))
    d = out[1].root[0, [0, 2]] - out[0].root[0, [0, 2]]
    axis = np.arctan2(d[0], d[1]) - np.deg2rad(30.0)
    assert abs(np.sin(axis)) > np.sin(np.deg2rad(60.0))  # the audience sees the partners side by side


def test_the_follower_steers_its_own_draws_towards_its_place() -> None:
    """With ``steer_radius_m`` the follower generator's stage term is told, before each follower step, the way to
    her place (the placement head's last output next to the leader's new end), in the follower model's own frame
    (the placement's yaw undone), and how far she is from it; a fresh couple is not steered."""
    from engine.models.couple import FLOOR_FRONT_M, FLOOR_SIDE_M
    from engine.models.follower import place_targets
    from engine.models.staging import rotate_xz

    model = _couples(1, steer_m=0.5)
    c = model.couples[0]
    guide = model.follower.get(c.follow_in).guide
    assert guide is not None and guide.cfg.stage_weight > 0
    lead_xz, lead_yaw = np.array([0.5, -0.2]), 0.3
    model._steer_follower(c, lead_xz, lead_yaw, (FLOOR_FRONT_M, FLOOR_SIDE_M))
    assert guide.stage_strength == 0.0  # fresh: not steered
    c.steps, c.follow_xz = 5, np.array([0.5, 1.0])
    model.placer.theta[model.placer.row(c.follow)] = 0.7
    # her place: 0.8 m in front of him, facing him (near her: no way round him needed)
    place = lead_xz + 0.8 * np.array([np.sin(lead_yaw), np.cos(lead_yaw)])
    c.pred = place_targets(lead_xz, lead_yaw, place, lead_yaw + np.pi).astype(np.float64)
    model._steer_follower(c, lead_xz, lead_yaw, (FLOOR_FRONT_M, FLOOR_SIDE_M))
    gap = float(np.linalg.norm(place - c.follow_xz))
    r0 = STEER.stage_from * 0.5
    assert np.isclose(guide.stage_strength, np.clip((gap - r0) / (0.5 - r0), 0.0, 2.0))
    way = rotate_xz((place - c.follow_xz) / gap, np.asarray(-0.7))
    np.testing.assert_allclose(guide.stage_dir, way, atol=1e-9)
    c.follow_xz = place + 0.05  # at her place: not steered
    model._steer_follower(c, lead_xz, lead_yaw, (FLOOR_FRONT_M, FLOOR_SIDE_M))
    assert guide.stage_strength == 0.0
    c.follow_xz = place + np.array([2.0, 0.0])  # far from her place: the step's follower draw is steered
    before = model.follower.guided_tokens
    out = model.step(_cond(model))
    assert [f.pid for f in out] == [0, 1] and model.follower.guided_tokens == before + 1
    with pytest.raises(ValueError, match="steer_radius_m"):
        CoupleDancer(model.leader, model.follower, model.cfg, steer_radius_m=-1.0)


def _swing(model: CoupleDancer, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """One frame of the follower with both legs straight, swung ``angle`` (rad) forward at the hip, feet on the floor:
    root [1, 1, 3], quat [1, 1, J, 4] (between +a and -a a leg passes the vertical: a pendulum)."""
    from engine.models.staging import PointFK

    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (1, 1, model.n_joints, 1))
    for side in "rl":
        quat[..., model.skeleton.index(side + "Thigh"), :] = [np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0]
    pts, _ = PointFK(model.skeleton)(np.zeros(3), quat[0, 0])
    return np.array([[[0.0, -pts[:, 1].min(), 1.0]]]), quat


def test_the_speed_limit_never_puts_the_followers_feet_under_the_floor() -> None:
    """A follower whose legs swing from forward to back in one frame is speed-limited: the limit's blend (root lerp,
    rotation slerp) swings the straight legs through the vertical at a lerped hip height, under the floor (the bare
    limiter does: the bug of issue 10 item 4, single-frame dips of 4-8 cm). The couple's last stages keep every
    foot point on the ground, and no point moves faster than the limit allows."""
    from engine.models.staging import FOOT_POINTS, FOOT_REST_HEIGHT, SpeedLimiter

    model = _couples(1, min_dist=0.0, staging=StagingConfig(steer=False))
    c = model.couples[0]
    c.steps = 1
    lead_root, lead_quat = _standing(model, 4, 0.0, (0.0, -1.0))
    frames = [_swing(model, a) for a in (0.45, 0.45, -0.45, -0.45)]
    root, quat = np.concatenate([f[0] for f in frames], 1), np.concatenate([f[1] for f in frames], 1)
    row = model._limit_row(c.follow)
    fk = model.placer.fk
    bare = SpeedLimiter(fk, model.n_joints, 1)
    bare.limits[0] = model.fol_limit.limits[row]
    low = [float((fk(*bare.frame(np.array([0]), root[:, k], quat[:, k]))[0][0, list(FOOT_POINTS), 1]
                  - FOOT_REST_HEIGHT).min()) for k in range(4)]
    assert min(low) < -0.02  # the bare limit's blend sinks a foot 2 cm or more under the floor
    fr, fq = model._late_frames([c], lead_root, lead_quat, root.copy(), quat.copy(), model._floor_m())
    pts, _ = fk(fr[0], fq[0])
    assert (pts[:, list(FOOT_POINTS), 1] - FOOT_REST_HEIGHT).min() > -0.01  # the couple's: on the ground
    assert model.ground_holds + model.feet_lifted > 0
    step = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
    assert np.all(step <= model.fol_limit.limits[row] / 30.0 * 1.2 + 1e-9)  # no new snap (the limit, + 20 %)
    raw, _ = fk(root[0], quat[0])
    assert np.allclose(pts[:, list(FOOT_POINTS)][:2, :, [0, 2]], raw[:, list(FOOT_POINTS)][:2, :, [0, 2]])
