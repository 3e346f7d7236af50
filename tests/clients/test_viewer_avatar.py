"""The viewer's humanoid avatars in headless Chromium (Debian's, via Playwright, SwiftShader WebGL): two
performers are drawn as avatars, each bone points where the pose says (3-D, against the pose the page
received), and the projected bones fall on rendered avatar pixels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from announce import announced_url

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_two_avatars_follow_the_pose(small_model: Path, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "play", "--demo", "--loop", "--model", str(small_model), "--backend", "torch",
         "--performers", "2", "--ws", "0", "--seconds", str(120 * SCALE)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        url = announced_url(proc, max_lines=40)
        assert url, "play did not announce its viewer URL"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 800, "height": 500})
            page.goto(url)
            page.wait_for_function("window.groovecast && window.groovecast.avatarReady "
                                   "&& window.groovecast.performers.length === 2 && window.groovecast.drawnFrames > 30",
                                   timeout=60_000 * SCALE)
            page.evaluate("window.groovecast.freeze = true")
            page.wait_for_timeout(300)  # a few frames drawn from the frozen poses
            info = page.evaluate("window.groovecast.inspect()")
            shown, hidden = tmp_path / "avatars.png", tmp_path / "no-avatars.png"
            page.screenshot(path=str(shown))
            page.evaluate("window.groovecast.hideAvatars = true")
            page.wait_for_timeout(300)
            page.screenshot(path=str(hidden))
            state = page.evaluate("({view: window.groovecast.view, renderer: window.groovecast.renderer})")
            browser.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)

    assert state == {"view": "avatar", "renderer": "webgl"}
    assert set(info) == {"0", "1"}
    drawn = np.abs(_pixels(shown) - _pixels(hidden)).sum(axis=2) > 40  # where the avatars cover the scene
    assert drawn.sum() > 3000, f"avatars cover only {drawn.sum()} pixels"
    h, w = drawn.shape
    worst = 0.0
    for performer, entry in info.items():
        assert len(entry["bones"]) == 10
        for bone, b in entry["bones"].items():
            avatar_dir = np.subtract(b["end"], b["start"])
            pose_dir = np.subtract(entry["pose"][b["to"]], entry["pose"][b["from"]])
            worst = max(worst, _angle(avatar_dir, pose_dir))
            assert _angle(avatar_dir, pose_dir) < 3.0, (performer, bone, _angle(avatar_dir, pose_dir))
            x, y = (round(v) for v in b["screenMid"])
            assert 0 <= x < w and 0 <= y < h, (performer, bone, "off screen")
            patch = drawn[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
            assert patch.any(), f"performer {performer} {bone}: no avatar pixels at its projected middle ({x}, {y})"
        x, y = (round(v) for v in entry["head"])
        assert drawn[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].any(), f"performer {performer}: head not drawn"
    # the two dancers stand apart: their hips project to different halves of the picture
    legs = [info[k]["bones"] for k in ("0", "1")]
    hx = [np.mean([b["leftUpperLeg"]["screenStart"][0], b["rightUpperLeg"]["screenStart"][0]]) for b in legs]
    assert hx[0] < w / 2 < hx[1]
    keep = os.environ.get("GROOVECAST_KEEP_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shown, Path(keep) / "viewer-avatars.png")
    print(f"worst bone direction error {worst:.3f} deg; avatar pixels {int(drawn.sum())}")
