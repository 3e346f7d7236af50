"""The README's main job: the shipped model dances to the demo clip in the viewer (headless Chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from announce import announced_url

from engine.runtime.assemble import default_model_dir

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)[140:]  # below the HUD text


def test_play_demo_dances_in_the_viewer(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    assert (default_model_dir() / "gpt.safetensors").is_file(), "the shipped model is missing"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "play", "--demo", "--loop", "--ws", "127.0.0.1:0", "--backend", "torch",
         "--seconds", str(60 * SCALE)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        url = announced_url(proc, max_lines=20)
        assert url, "play did not announce its viewer URL"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 640, "height": 480})
            page.goto(url + "?renderer=2d&performer=7")  # no such performer: the empty scene
            page.wait_for_function("window.groovecast && window.groovecast.connected", timeout=15_000 * SCALE)
            empty = tmp_path / "empty.png"
            page.screenshot(path=str(empty))
            page.goto(url + "?renderer=2d")
            page.wait_for_function("window.groovecast && window.groovecast.drawnFrames > 60", timeout=30_000 * SCALE)
            s0 = page.evaluate("({...window.groovecast})")
            page.wait_for_timeout(2000)
            s1 = page.evaluate("({...window.groovecast})")
            live = tmp_path / "dance.png"
            page.screenshot(path=str(live))
            browser.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert s1["skeleton"] == "cmu"
    assert s1["frames"] - s0["frames"] >= 30, (s0, s1)  # about 30 fps for 2 s (generous for loaded CI)
    diff = np.abs(_pixels(live) - _pixels(empty)).sum(axis=2) > 60
    assert diff.sum() > 300, f"no dancer drawn: only {diff.sum()} pixels differ from the empty scene"
    keep = os.environ.get("GROOVECAST_KEEP_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "dance.png").write_bytes(live.read_bytes())
