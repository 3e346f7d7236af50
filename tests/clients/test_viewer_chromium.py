"""Headless Chromium (Debian's, driven by Playwright) shows a live replay in the served viewer."""

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
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
    # software WebGL: headless machines have no GPU
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _canvas_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    return img[140:, :, :]  # below the HUD box, which shows changing numbers


@pytest.mark.parametrize("renderer", ["webgl", "2d"])
def test_viewer_draws_live_replay(cmu_take: Path, tmp_path: Path, renderer: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "replay", str(cmu_take), "--ws", "127.0.0.1:0", "--loop",
         "--seconds", str(60 * SCALE), "--bpm", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        url = announced_url(proc, max_lines=5)
        assert url, "replay did not announce its viewer URL"
        query = "?renderer=2d" if renderer == "2d" else ""
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 640, "height": 480})
            # the empty scene: subscribed to a performer that does not exist, so no pose arrives
            page.goto(url + ("?renderer=2d&" if renderer == "2d" else "?") + "performer=7")
            page.wait_for_function("window.groovecast && window.groovecast.connected", timeout=15_000 * SCALE)
            page.wait_for_timeout(500)
            assert page.evaluate("window.groovecast.frames") == 0
            empty = tmp_path / f"empty-{renderer}.png"
            page.screenshot(path=str(empty))

            page.goto(url + query)
            page.wait_for_function("window.groovecast && window.groovecast.drawnFrames > 30",
                                   timeout=20_000 * SCALE)
            state0 = page.evaluate("({...window.groovecast})")
            page.wait_for_timeout(1000)
            state1 = page.evaluate("({...window.groovecast})")
            live = tmp_path / f"live-{renderer}.png"
            page.screenshot(path=str(live))
            browser.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)

    expect = "webgl" if renderer == "webgl" else "canvas2d"
    assert state1["renderer"] == expect
    assert state1["skeleton"] == "cmu"
    # frames keep arriving at about 30 per second (generous bound for a loaded CI machine)
    assert state1["frames"] - state0["frames"] >= 15, (state0, state1)
    assert state1["lastFrameIndex"] > state0["lastFrameIndex"]
    # latency was measured through the clock sync: never below what the sync's uncertainty (rtt/2) allows
    assert state1["latencyMs"] is not None and state1["clockRttMs"] is not None
    assert -(state1["clockRttMs"] / 2 + 1) < state1["latencyMs"] < 1000 * SCALE, state1
    diff = np.abs(_canvas_pixels(live) - _canvas_pixels(empty)).sum(axis=2) > 60
    assert diff.sum() > 300, f"skeleton not visible: only {diff.sum()} pixels differ from the empty scene"
    keep = os.environ.get("GROOVECAST_KEEP_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for f in (empty, live):
            shutil.copy(f, Path(keep) / f.name)
