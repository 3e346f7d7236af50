"""The couple kind: two performers per couple through the motion-model protocol, stepped leader first."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.models.couple import COUPLE_KIND, CoupleDancer
from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.gpt_dancer import DanceGenerator
from engine.models.protocol import Controls, MotionModel
from engine.models.vqvae import VQVAE, VQVAEConfig
from export.follower_backend import FollowerBackend
from export.torch_backend import TorchBackend
from tests.models.test_follower import tiny_follower


def _couples(n: int = 2, min_dist: float = 0.3) -> CoupleDancer:
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    fol = tiny_follower()
    leader = DanceGenerator(TorchBackend(gpt, capacity=n, device="cpu"), vq, seed=0)
    follower = DanceGenerator(FollowerBackend(fol, capacity=n), vq, seed=100)
    model = CoupleDancer(leader, follower, replace(fol.fcfg, min_root_distance_m=min_dist))
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
    for _ in range(5):
        model.step(_cond(model))
    lead, fol = model.leader.get(0), model.follower.get(0)
    tokens = [(int(lead.tok_up[-3]), int(fol.tok_up[-3]))]
    model.rewind(0, 2)
    model.rewind(1, 2, root_xz=np.array([3.0, 4.0]))  # the runtime rewinds both ids in one re-plan: applied once
    assert lead.n_tokens == fol.n_tokens == 3 and model.couples[0].steps == 3
    assert (int(lead.tok_up[-1]), int(fol.tok_up[-1])) == tokens[0]
    assert np.allclose(fol.root_xz, [3.0, 4.0])
    out = model.step(_cond(model))
    assert out[0].step == out[1].step == 3
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


def test_heading_correction_turns_the_whole_follower_about_its_start() -> None:
    from engine.models.couple import Couple
    from engine.models.follower import hip_yaw
    from engine.models.protocol import StepFrames
    from engine.skeleton import rotations as R

    model = _couples(1)
    model.cfg = replace(model.cfg, yaw_pull=0.0)
    j = model.n_joints
    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (4, j, 1))  # hip heading 0 (looking +z)
    root = np.array([[0.0, 1.0, 0.1], [0.0, 1.0, 0.2], [0.0, 1.0, 0.3], [0.0, 1.0, 0.4]], np.float32)
    c = Couple(lead=0, follow=1, lead_in=0, follow_in=0, yaw_offset=np.pi / 2)
    r, q = model._turn(c, StepFrames(pid=1, step=0, root=root, quat=quat), np.zeros(2), 0.0)
    hip = model.skeleton.index("hip")
    assert np.allclose(hip_yaw(R.quat_to_matrix(q[:, hip].astype(np.float64))), np.pi / 2, atol=1e-5)
    assert np.allclose(r[:, 0], root[:, 2], atol=1e-6) and np.allclose(r[:, 2], 0.0, atol=1e-6)  # +z walk -> +x
    assert np.allclose(r[:, 1], 1.0) and np.array_equal(q[:, hip + 1 :], quat[:, hip + 1 :])
    model.cfg = replace(model.cfg, yaw_pull=1.0)  # towards a wanted heading, at most MAX_TURN_RAD per step
    c2 = Couple(lead=0, follow=1, lead_in=0, follow_in=0)
    _, q2 = model._turn(c2, StepFrames(pid=1, step=0, root=root, quat=quat), np.zeros(2), 1.0)
    assert np.isclose(c2.yaw_offset, 0.2) and np.isclose(hip_yaw(R.quat_to_matrix(q2[-1, hip].astype(np.float64))), 0.2)
