"""The Unity receiver (clients/unity/GroovecastVmcReceiver.cs) compiled with Mono against stand-ins for the
UnityEngine API it uses (tests/clients/unity/UnityEngineStubs.cs: real quaternion and transform math, NOT
Unity) and run on our VMC bundles: a rig with arbitrary bone axes that does not stand in a T-pose at start
points its bones where the source motion points them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.motion import load_motion
from engine.skeleton.skeleton import CMU_SKELETON, Skeleton
from streams.prepare import prepare
from streams.vmc import encode_vmc

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "tests/clients/unity/UnityEngineStubs.cs", REPO / "clients/unity/GroovecastVmcReceiver.cs",
           REPO / "tests/clients/unity/Harness.cs"]
# harness bone -> the bone it points at (both are HumanBodyBones present in the harness rig and in CMU)
CHECKED = {
    "Spine": "Chest", "Chest": "Neck", "LeftShoulder": "LeftUpperArm", "RightShoulder": "RightUpperArm",
    "LeftUpperArm": "LeftLowerArm", "LeftLowerArm": "LeftHand", "RightUpperArm": "RightLowerArm",
    "RightLowerArm": "RightHand", "LeftHand": "LeftMiddleProximal", "LeftUpperLeg": "LeftLowerLeg",
    "LeftLowerLeg": "LeftFoot", "RightUpperLeg": "RightLowerLeg", "RightLowerLeg": "RightFoot",
}

pytestmark = pytest.mark.skipif(shutil.which("mcs") is None or shutil.which("mono") is None,
                                reason="Mono (Debian package mono-mcs) not installed")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("unity") / "harness.exe"
    r = subprocess.run(["mcs", "-warnaserror-", f"-out:{exe}", "-r:System.dll", *map(str, SOURCES)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return exe


def _run(harness: Path, frames: list[PoseFrame], skel: Skeleton, tmp: Path) -> list[dict[str, np.ndarray]]:
    files = []
    for k, f in enumerate(frames):
        files.append(tmp / f"b{k}.bin")
        files[-1].write_bytes(encode_vmc(f, skel))
    r = subprocess.run(["mono", str(harness), *map(str, files)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in r.stderr and "warning" not in r.stderr, r.stderr  # it found the Avatar's T-pose
    out: list[dict[str, np.ndarray]] = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts[0] == "frame":
            out.append({})
        elif parts[0] != "bundles":
            out[-1][parts[0]] = np.array([float(v) for v in parts[1:]])
    assert r.stdout.strip().endswith(f"bundles {len(frames)}")
    return out


def _worst_error(frames: list[PoseFrame], skel: Skeleton, got: list[dict[str, np.ndarray]]) -> float:
    joint_of = {b: skel.joint_names.index(n) for n, b in skel.unity_bones.items()}
    worst = 0.0
    for f, rig in zip(frames, got, strict=True):
        src = prepare(f, skel).positions * [-1, 1, 1]  # Unity space
        for bone, child in CHECKED.items():
            a = rig[child] - rig[bone]
            b = src[joint_of[child]] - src[joint_of[bone]]
            cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
            worst = max(worst, float(np.degrees(np.arccos(np.clip(cos, -1, 1)))))
    return worst


def test_receiver_compiles_and_follows_random_poses(harness: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = []
    for k in range(6):
        rot = R.axis_angle_to_quat(rng.normal(0, 0.5 if k else 0.0, size=(CMU_SKELETON.num_joints, 3)))
        frames.append(PoseFrame(k, k, frame_index=k, performer=0, skeleton="cmu",
                                root_position=np.array([0.1, 0.9, 0.2], np.float32), rotations=rot.astype(np.float32)))
    got = _run(harness, frames, CMU_SKELETON, tmp_path)
    assert _worst_error(frames, CMU_SKELETON, got) < 3.0
    # the hips land over the root at the pose's height (VMC root + hips local position)
    np.testing.assert_allclose(got[0]["Hips"], [-0.1, 0.9, 0.2], atol=1e-5)


def test_receiver_follows_a_real_take(harness: Path, tmp_path: Path, cmu_take: Path) -> None:
    motion = load_motion(cmu_take)
    frames = [PoseFrame(k, k, frame_index=k, performer=0, skeleton="cmu",
                        root_position=motion.root_positions[k].astype(np.float32),
                        rotations=motion.rotations[k].astype(np.float32)) for k in range(0, 1200, 100)]
    got = _run(harness, frames, motion.skeleton, tmp_path)
    assert _worst_error(frames, motion.skeleton, got) < 3.0
