"""bench.watch: its own BVH reader agrees with the engine's FK (so its sheets show what the files hold), a sheet
renders, and the viewer draws a couple where the engine put it (headless Chromium, marked browser)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import watch
from engine.models.pose_repr import Motion, metric_cmu_skeleton
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import forward_kinematics
from engine.train.generate import write_motion_bvh

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _motion(frames: int = 12, seed: int = 0) -> Motion:
    """A metric CMU-skeleton motion with random joint rotations (up to ~40 deg) and a wandering root."""
    rng = np.random.default_rng(seed)
    skel = metric_cmu_skeleton()
    aa = rng.normal(scale=0.4, size=(frames, skel.num_joints, 3))
    root = np.cumsum(rng.normal(scale=0.05, size=(frames, 3)), axis=0) + np.array([0.0, 0.9, 0.0])
    return Motion(skel, root, R.axis_angle_to_matrix(aa), 30.0)


def test_own_reader_matches_the_engine_fk(tmp_path: Path) -> None:
    m = _motion()
    write_motion_bvh(m, tmp_path / "m.bvh")
    b = watch.read_bvh(tmp_path / "m.bvh")
    ours = watch.bvh_positions(b)
    theirs = forward_kinematics(m.skeleton, m.root_pos, m.rot)
    idx = [b.names.index(n) for n in m.skeleton.joint_names]
    assert b.fps == pytest.approx(30.0, rel=1e-4)
    np.testing.assert_allclose(ours[:, idx], theirs, atol=2e-4)  # the file's 6 decimals of degrees and metres


def test_own_reader_reads_a_real_capture_file_as_the_engine_does(tmp_path: Path) -> None:
    """The raw salsa file (root channels Z Y X, others Z X Y): both readers give the same points."""
    path = DATA / "cmu_salsa" / "60_12_scaled.bvh"
    if not path.exists():
        pytest.skip(f"{path} not here")
    from engine.skeleton.motion import load_motion

    b = watch.read_bvh(path)
    ours = watch.bvh_positions(b)[:50]
    m = load_motion(path)
    theirs = m.positions()[:50]
    idx = [b.names.index(n) for n in m.skeleton.joint_names]
    np.testing.assert_allclose(ours[:, idx], theirs, atol=1e-4)
    write_motion_bvh(_motion(1), tmp_path / "engine.bvh")  # the engine's metric skeleton: the size raw is drawn at
    engine_size = watch.rest_height(watch.read_bvh(tmp_path / "engine.bvh"))
    assert engine_size == pytest.approx(watch.CHAIN_HEIGHT_M, abs=1e-3)


def test_a_sheet_of_a_couple_renders(tmp_path: Path) -> None:
    for i in range(2):
        write_motion_bvh(_motion(40, seed=i), tmp_path / f"d{i}.bvh")
    bodies = [watch.load_body(tmp_path / f"d{i}.bvh", lab) for i, lab in enumerate(("lead", "follow"))]
    assert bodies[0].hips is not None and bodies[0].feet and bodies[0].head is not None
    out = watch.sheet(bodies, "test", tmp_path / "s.png", shots=3, dpi=30)
    from PIL import Image

    im = np.asarray(Image.open(out).convert("L"))
    assert im.shape[0] > 150 and (im < 128).mean() > 0.005  # something drawn


def test_facing_of_a_body_facing_plus_z_is_zero(tmp_path: Path) -> None:
    """The rest pose of the engine skeleton faces +Z (the audience): yaw 0; turned 90 deg about Y: +90."""
    skel = metric_cmu_skeleton()
    rot = np.broadcast_to(np.eye(3), (2, skel.num_joints, 3, 3)).copy()
    rot[1, 0] = R.axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0]))
    write_motion_bvh(Motion(skel, np.array([[0.0, 0.9, 0.0]] * 2), rot, 30.0), tmp_path / "f.bvh")
    yaw = watch.load_body(tmp_path / "f.bvh", "d").facing()
    assert yaw is not None
    np.testing.assert_allclose(yaw, [0.0, 90.0], atol=1e-3)


CHROMIUM = "/usr/bin/chromium"


def _connected_viewer(p: Any, query: str, sockets: list) -> tuple[Any, Any]:
    """Headless Chromium on the viewer page (served by the watch tool's router, its WebSocket captured into
    ``sockets``), once the page says it is connected."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=watch.CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 320, "height": 240})
    page.route("http://watch.invalid/**", watch.serve_static)
    page.route_web_socket("**/ws*", lambda ws: sockets.append(ws))
    page.goto(f"http://watch.invalid/index.html{query}")
    page.wait_for_function("window.groovecast && window.groovecast.connected", timeout=30_000)
    return browser, page


@pytest.mark.browser
@pytest.mark.slow
def test_viewer_keeps_a_couple_in_its_world_frame(tmp_path: Path) -> None:
    """With the hello's groups the viewer draws a couple where the engine put it; two independent performers stand
    side by side instead (they would share the one stage)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    from streams.player import MotionPlayer
    from streams.wire_json import encode_json, hello_message

    m = _motion(2)
    skel = m.skeleton
    quat = R.matrix_to_quat(m.rot)
    from engine.skeleton.motion import Motion as Clip

    lead = MotionPlayer(Clip(skel, 30.0, np.array([[0.0, 0.9, 0.0]] * 2), quat), 30, performer=0, height_m=0)
    follow = MotionPlayer(Clip(skel, 30.0, np.array([[0.3, 0.9, 0.6]] * 2), quat), 30, performer=1, height_m=0)
    seen = {}
    for name, groups in (("couple", [[0, 1]]), ("solos", None)):
        sockets: list = []
        with sync_api.sync_playwright() as p:
            browser, page = _connected_viewer(p, "?view=stick", sockets)
            sockets[0].send(hello_message(time.monotonic_ns(), [0, 1], groups))
            frames = {}
            for pl in (lead, follow):
                msg = encode_json(pl.frame_at(0, 0), 0, pl.motion.skeleton)
                frames[pl.performer] = json.loads(msg)
                sockets[0].send(msg)
            page.wait_for_function("window.groovecast.performers.length === 2", timeout=30_000)
            info = page.evaluate("window.groovecast.inspect()")
            browser.close()
        hips = {int(k): np.asarray(v["pose"]["Hips"]) for k, v in info.items()}
        seen[name] = hips
        if name == "couple":
            for k in (0, 1):
                np.testing.assert_allclose(hips[k], frames[k]["positions"][0], atol=1e-4)
    solo = seen["solos"]
    assert solo[1][0] - solo[0][0] == pytest.approx(1.2, abs=1e-3)  # side by side, their own travel removed


@pytest.mark.browser
@pytest.mark.slow
def test_the_avatar_faces_where_the_dancer_faces() -> None:
    """The robot's face (its goggles) looks where the pose's pelvis faces: the audience sees a face, not the back of
    the head (its glTF stores the head turned half a turn from the body)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    from engine.skeleton.motion import Motion as Clip
    from streams.player import MotionPlayer
    from streams.wire_json import encode_json, hello_message

    skel = metric_cmu_skeleton()
    for yaw_deg in (0.0, 90.0, 180.0):
        q = np.zeros((1, skel.num_joints, 4))
        q[..., 0] = 1.0
        q[0, 0] = [np.cos(np.radians(yaw_deg) / 2), 0.0, np.sin(np.radians(yaw_deg) / 2), 0.0]
        pl = MotionPlayer(Clip(skel, 30.0, np.array([[0.0, 0.9, 0.0]]), q), 30, performer=0, height_m=0)
        sockets: list = []
        with sync_api.sync_playwright() as p:
            browser, page = _connected_viewer(p, "", sockets)
            sockets[0].send(hello_message(time.monotonic_ns(), [0]))
            page.wait_for_function("window.groovecast.avatarReady", timeout=60_000)
            sockets[0].send(encode_json(pl.frame_at(0, 0), 0, skel))
            page.wait_for_function("window.groovecast.drawnFrames > 3", timeout=30_000)
            face = np.asarray(page.evaluate("window.groovecast.inspect()")["0"]["face"])
            browser.close()
        want = np.array([np.sin(np.radians(yaw_deg)), 0.0, np.cos(np.radians(yaw_deg))])
        cos = float(face @ want / np.linalg.norm(face))
        assert cos > np.cos(np.radians(25)), f"pose yaw {yaw_deg}: the face looks {face}"
