"""Watch the dances as a person would: contact sheets and viewer strips of the shipped model's and real dances.

Every other figure of this project is a metric; this renders the dances so a person can judge them by eye, in two
independent ways:

* **stick sheets** (``<case>_sheet.png``) drawn from the BVH files the dance was written to, read by the small BVH
  reader of this module (its own parser and forward kinematics: nothing of ``engine.skeleton``), so a defect of the
  engine's own reader or FK cannot hide itself. Row 1: front views (seen from the audience, +Z, as the web viewer's
  camera) at evenly spaced times; row 2: top views of the same frames with the stage circle (radius 1.5 m) and a
  facing arrow (the audience is at the bottom); row 3: the whole clip's root path from above, a 1 s onion skin
  from the front (sliding feet and pops show as smeared or jumping feet), the lowest foot point per frame (sinking
  below 0 or floating) and the hip yaw against the front. Left limbs blue, right limbs red; a couple's follower in
  paler colours.
* **viewer strips** (``<case>_viewer.png``): the same dance in the web viewer (``streams/static``: the page users
  open) in headless Chromium (Debian's ``/usr/bin/chromium`` via Playwright, SwiftShader WebGL), fed through the
  project's own stream path (``MotionPlayer`` frames -> ``encode_json``, the server's messages) over a WebSocket that
  Playwright routes in-process, paced in real time. Row 1: the avatars; row 2: the viewer's own stick figures, from
  the same frames. Bones mapped wrong show as limbs that differ between the rows or from the sheet.

Cases (``--cases``, default all): ``salsa``, ``indian``, ``modern`` (solo dances to the real recordings of
``../shared/data/music_cc`` by ``groovecast generate``), ``couple`` (``--couple``), ``switch`` (salsa, then modern from
6 s: the live generator with a genre change between tokens, as ``eval --controls`` switches), ``live_salsa`` /
``live_couple`` (the same through ``play --fast --record``: the runtime and playout), ``salsa_vibe`` (salsa to the text
cases' music, no text), ``arms_high`` / ``arms_low`` / ``spinning`` (``--text``), ``stay_in_place`` / ``travel_across``
(modern with "stay in place" / "travel across the floor"), ``keyframe`` (``--keyframe`` of a held-out real Indian pose
at 6 s), and real capture as the reference a viewer compares with: ``real_salsa`` (the held-out couple take 12),
``real_indian`` (take 07), ``real_modern`` (take 17), each as captured (``raw``, the original file read by this module's
reader, scaled to the engine's 1.7 m from its bone lengths, floor at the 5th percentile of its lowest foot point), as
the engine sees it (``engine``: retargeted, metric, 30 fps) and, solo takes, staged by the engine's stager (``staged``;
a couple is staged as a pair by the couple model, which real capture does not pass through).

    python3 -m bench.watch [--cases salsa,couple] [--seconds 12] [--seed 0] [--out DIR] [--no-browser]

Writes PNGs to ``--out`` (default ``.cache/watch/out``) and the BVH files to ``.cache/watch/bvh``; the findings of
a person looking at them are in ``bench/reports/watch.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MUSIC = SHARED / "data" / "music_cc"
SONGS = {
    "fishin": MUSIC / "Karissa_Hobbs_-_Lets_Go_Fishin.ogg",
    "vibe": MUSIC / "Kevin_MacLeod_-_Vibe_Ace.ogg",
    "plum": MUSIC / "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
    "hungarian": MUSIC / "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
}
STAGE_RADIUS_M = 1.5
#: :func:`rest_height` (summed bone chains) of the engine's metric skeleton, a dancer about 1.7 m tall standing: raw
#: capture is scaled to it so that it is drawn at the engine's size.
CHAIN_HEIGHT_M = 1.776
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


# ----------------------------------------------------------------------------------------------- an own BVH reader
@dataclass
class Bvh:
    """A BVH file as written: joints (End Sites included as joints named ``<parent>_end``), offsets, channels."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # [J, 3]
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation", "Xrotation", "Yrotation"]
    frame_time: float
    motion: np.ndarray  # [T, C] channel values as in the file

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


def read_bvh(path: Path) -> Bvh:
    """Parse a BVH file (any channel order; End Sites kept as leaf joints)."""
    tokens = Path(path).read_text().split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    i = 0
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            i += 2
        elif tok == "End":  # End Site
            par = stack[-1]
            names.append(names[par] + "_end")
            parents.append(par)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            i += 2
        elif tok == "{":
            stack.append(len(names) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets[stack[-1]] = [float(t) for t in tokens[i + 1 : i + 4]]
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels[stack[-1]] = tokens[i + 2 : i + 2 + n]
            i += 2 + n
        else:  # HIERARCHY
            i += 1
    n_frames = int(tokens[i + 2])  # MOTION Frames: N
    frame_time = float(tokens[i + 5])  # Frame Time: dt
    width = sum(len(c) for c in channels)
    values = np.asarray(tokens[i + 6 : i + 6 + n_frames * width], dtype=np.float64)
    return Bvh(names, parents, np.asarray(offsets), channels, frame_time, values.reshape(n_frames, width))


def _axis_rot(axis: str, deg: np.ndarray) -> np.ndarray:
    """[T] angles in degrees about x, y or z -> [T, 3, 3] rotation matrices."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((len(a), 3, 3))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    k = 3 - i - j
    m[:, k, k] = 1.0
    m[:, i, i] = c
    m[:, j, j] = c
    m[:, i, j] = -s
    m[:, j, i] = s
    return m


def bvh_positions(b: Bvh) -> np.ndarray:
    """World joint positions [T, J, 3] in file units: rotations composed in the channel order (intrinsic)."""
    t = len(b.motion)
    pos = np.zeros((t, len(b.names), 3))
    world = np.zeros((t, len(b.names), 3, 3))
    col = 0
    for j, par in enumerate(b.parents):
        local = np.broadcast_to(np.eye(3), (t, 3, 3)).copy()
        trans = np.broadcast_to(b.offsets[j], (t, 3)).copy()
        for ch in b.channels[j]:
            v = b.motion[:, col]
            col += 1
            kind, axis = ch[1:], ch[0].lower()
            if kind == "rotation":
                local = local @ _axis_rot(axis, v)
            else:  # position: replaces the offset on that axis
                trans[:, "xyz".index(axis)] = v
        if par < 0:
            pos[:, j] = trans
            world[:, j] = local
        else:
            pos[:, j] = pos[:, par] + np.einsum("tab,tb->ta", world[:, par], trans)
            world[:, j] = world[:, par] @ local
    return pos


def _chain_length(b: Bvh, leaf: int) -> float:
    length = 0.0
    while b.parents[leaf] >= 0:
        length += float(np.linalg.norm(b.offsets[leaf]))
        leaf = b.parents[leaf]
    return length


def rest_height(b: Bvh) -> float:
    """Standing height from the bone lengths alone: root -> head top plus root -> the longest leg chain."""
    up = [j for j, n in enumerate(b.names) if "head" in n.lower()]
    legs = [j for j, n in enumerate(b.names) if any(k in n.lower() for k in ("foot", "toe", "ankle"))]
    if not up or not legs:
        raise ValueError("no head or foot joint to measure the height from")
    return max(_chain_length(b, j) for j in up) + max(_chain_length(b, j) for j in legs)


def _side(name: str) -> str:
    n = name.replace("CC_Base_", "")
    low = n.lower()
    if low.startswith(("l_", "left")) or (n[:1] == "l" and n[1:2].isupper()):
        return "l"
    if low.startswith(("r_", "right")) or (n[:1] == "r" and n[1:2].isupper()):
        return "r"
    return "c"


def _find(names: list[str], side: str, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        for j, n in enumerate(names):
            if _side(n) == side and key in n.lower() and not n.endswith("_end"):
                return j
    return None


@dataclass
class Body:
    """One dancer to draw: world points [T, J, 3] in metres (Y up), its bones, sides and marker joints."""

    label: str
    pos: np.ndarray
    parents: list[int]
    sides: list[str]
    fps: float
    feet: list[int] = field(default_factory=list)  # lowest-point candidates (feet, toes and their end sites)
    hips: tuple[int, int] | None = None  # (left, right) thigh joints: the facing
    head: int | None = None

    def facing(self) -> np.ndarray | None:
        """[T] yaw of the pelvis' forward direction ((left - right) x up), degrees from +Z towards +X."""
        if self.hips is None:
            return None
        d = self.pos[:, self.hips[0]] - self.pos[:, self.hips[1]]  # right -> left
        fwd_x, fwd_z = -d[:, 2], d[:, 0]  # d x up: (dx, dy, dz) x (0, 1, 0) = (-dz, 0, dx)
        return np.degrees(np.arctan2(fwd_x, fwd_z))


def load_body(path: Path, label: str, fps: float | None = None, normalise: bool = False,
              skip: int = 0) -> Body:
    """A BVH file as a :class:`Body`. ``normalise``: scale to the engine's size from the bone lengths (about 1.7 m
    standing, :data:`CHAIN_HEIGHT_M`) and put the floor (5th
    percentile of the lowest foot point) at 0 (raw capture in file units); ``fps`` overrides the header's rate."""
    b = read_bvh(path)
    pos = bvh_positions(b)[skip:]
    names = b.names
    feet = [j for j, n in enumerate(names) if any(k in n.lower() for k in ("foot", "toe", "ankle"))]
    if normalise:
        pos = pos * (CHAIN_HEIGHT_M / rest_height(b))
        pos[..., 1] -= np.percentile(pos[:, feet, 1].min(axis=1), 5)
    lh = _find(names, "l", ("thigh", "upleg", "hip"))
    rh = _find(names, "r", ("thigh", "upleg", "hip"))
    head = next((j for j, n in enumerate(names) if n.lower().endswith("head")), None)
    return Body(label, pos, b.parents, [_side(n) for n in names], fps or b.fps, feet,
                (lh, rh) if lh is not None and rh is not None else None, head)


# ------------------------------------------------------------------------------------------------------ drawing
COLOURS = [{"l": "#1f5fd0", "r": "#d02020", "c": "#202020"}, {"l": "#6fa8ff", "r": "#ff8a6f", "c": "#8a8a8a"}]


def _draw(ax: Any, body: Body, f: int, view: str, k: int, alpha: float = 1.0, lw: float = 1.6) -> None:
    p = body.pos[f]
    a, b = (0, 1) if view == "front" else (0, 2)
    col = COLOURS[min(k, 1)]
    for j, par in enumerate(body.parents):
        if par < 0:
            continue
        s = body.sides[j] if body.sides[j] != "c" else body.sides[par]
        ax.plot([p[par, a], p[j, a]], [p[par, b], p[j, b]], color=col[s], lw=lw, alpha=alpha,
                solid_capstyle="round")
    if body.head is not None and view == "front":
        ax.plot(p[body.head, a], p[body.head, b], "o", ms=4, color=col["c"], alpha=alpha)
    yaw = body.facing()
    if yaw is not None and view == "top":
        r = p[body.parents.index(-1)]
        y = np.radians(yaw[f])
        ax.annotate("", xy=(r[0] + 0.45 * np.sin(y), r[2] + 0.45 * np.cos(y)), xytext=(r[0], r[2]),
                    arrowprops={"arrowstyle": "->", "color": col["c"], "lw": 1.5, "alpha": alpha})


def _stage(ax: Any, view: str) -> None:
    if view == "front":
        ax.axhline(0.0, color="#6a5a3a", lw=1.2)
        for x in (-STAGE_RADIUS_M, STAGE_RADIUS_M):
            ax.plot([x, x], [0, 0.08], color="#6a5a3a", lw=1.2)
    else:
        t = np.linspace(0, 2 * np.pi, 100)
        ax.plot(STAGE_RADIUS_M * np.cos(t), STAGE_RADIUS_M * np.sin(t), color="#6a5a3a", lw=1.0)
        ax.plot([0], [0], "+", color="#6a5a3a")
        ax.text(0, STAGE_RADIUS_M + 0.05, "audience", ha="center", va="bottom", fontsize=6, color="#6a5a3a",
                clip_on=True)


def _window(bodies: list[Body], f: int, axis: int, half: float) -> tuple[float, float]:
    """Centred on the bodies of frame ``f``, ``half`` wide each side, or wider so that every body is in it."""
    c = float(np.mean([b.pos[f, :, axis].mean() for b in bodies]))
    reach = max(float(np.abs(b.pos[f, :, axis] - c).max()) for b in bodies) + 0.2
    return c - max(half, reach), c + max(half, reach)


def sheet(bodies: list[Body], title: str, out: Path, shots: int = 6, dpi: int = 80) -> Path:
    """One contact sheet (see the module doc) of one or two bodies that share a world frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(b.pos) for b in bodies)
    fps = bodies[0].fps
    frames = np.linspace(0, n - 1, shots + 1)[1:].astype(int)
    fig = plt.figure(figsize=(1.7 * shots, 7.6))
    gs = fig.add_gridspec(3, shots * 2, height_ratios=[1.2, 1.0, 1.1], hspace=0.25, wspace=0.6,
                          left=0.03, right=0.99, top=0.92, bottom=0.06)
    low = gs[2, :].subgridspec(1, 4, width_ratios=[1.0, 1.4, 1.0, 1.0], wspace=0.3)
    half = 1.3 if len(bodies) > 1 else 1.0
    for i, f in enumerate(frames):
        ax = fig.add_subplot(gs[0, 2 * i : 2 * i + 2])
        _stage(ax, "front")
        for k, b in enumerate(bodies):
            _draw(ax, b, f, "front", k)
        ax.set_xlim(*_window(bodies, f, 0, half))
        ax.set_ylim(-0.15, 2.1)
        ax.set_aspect("equal")
        ax.set_title(f"{f / fps:.1f} s (frame {f})", fontsize=8)
        ax.tick_params(labelsize=6)
        ax = fig.add_subplot(gs[1, 2 * i : 2 * i + 2])
        _stage(ax, "top")
        for k, b in enumerate(bodies):
            _draw(ax, b, f, "top", k, lw=1.2)
        ax.set_xlim(*_window(bodies, f, 0, half))
        lo, hi = _window(bodies, f, 2, half)
        ax.set_ylim(hi, lo)  # +Z (the audience) at the bottom, as seen from above with the audience in front
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    # the whole clip from above
    ax = fig.add_subplot(low[0])
    _stage(ax, "top")
    for k, b in enumerate(bodies):
        root = b.pos[:n, b.parents.index(-1)]
        ax.plot(root[:, 0], root[:, 2], color=COLOURS[min(k, 1)]["c"], lw=1.0)
        yaw = b.facing()
        if yaw is not None:
            for f in range(0, n, int(fps)):
                y = np.radians(yaw[f])
                ax.annotate("", xy=(root[f, 0] + 0.25 * np.sin(y), root[f, 2] + 0.25 * np.cos(y)),
                            xytext=(root[f, 0], root[f, 2]),
                            arrowprops={"arrowstyle": "->", "color": COLOURS[min(k, 1)]["r"], "lw": 0.8})
    lim = max(2.0, float(max(np.abs(b.pos[:n, b.parents.index(-1)][:, [0, 2]]).max() for b in bodies)) + 0.4)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(lim, -lim)
    ax.set_aspect("equal")
    ax.set_title("root path from above, facing every 1 s", fontsize=8)
    ax.tick_params(labelsize=6)
    # onion skin of the busiest second, from the front
    ax = fig.add_subplot(low[1])
    _stage(ax, "front")
    b0 = bodies[0]
    win = int(fps)
    feet_speed = np.linalg.norm(np.diff(b0.pos[:n, b0.feet], axis=0), axis=-1).mean(axis=1)
    start = int(np.argmax(np.convolve(feet_speed, np.ones(win), "valid"))) if n > win + 1 else 0
    for f in range(start, min(n, start + win), max(1, int(fps) // 10)):
        for k, b in enumerate(bodies):
            _draw(ax, b, f, "front", k, alpha=0.15 + 0.85 * (f - start) / win, lw=0.9)
    ax.set_xlim(*_window(bodies, start, 0, half + 0.3))
    ax.set_ylim(-0.15, 2.1)
    ax.set_aspect("equal")
    ax.set_title(f"onion skin {start / fps:.1f}-{(start + win) / fps:.1f} s (busiest feet), every 0.1 s", fontsize=8)
    ax.tick_params(labelsize=6)
    # the floor contact and the facing over time
    ax = fig.add_subplot(low[2])
    t = np.arange(n) / fps
    for k, b in enumerate(bodies):
        ax.plot(t, 100 * b.pos[:n, b.feet, 1].min(axis=1), color=COLOURS[min(k, 1)]["c"], lw=0.9, label=b.label)
    ax.axhline(0, color="#6a5a3a", lw=0.8)
    ax.set_title("lowest foot point (cm)", fontsize=8)
    ax.set_xlabel("s", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    ax = fig.add_subplot(low[3])
    for k, b in enumerate(bodies):
        yaw = b.facing()
        if yaw is not None:
            ax.plot(t, yaw[:n], ".", ms=1.5, color=COLOURS[min(k, 1)]["c"])
    ax.axhspan(-45, 45, color="#c8e6c8", alpha=0.5)
    ax.set_ylim(-180, 180)
    ax.set_yticks([-180, -90, -45, 0, 45, 90, 180])
    ax.set_title("pelvis yaw from the audience (deg)", fontsize=8)
    ax.set_xlabel("s", fontsize=7)
    ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    """A dance to watch: BVH files of one world frame (a couple: two) and how to read them."""

    name: str
    title: str
    files: list[Path]
    normalise: bool = False  # raw capture: scale to the engine's size, floor at 0
    fps: float | None = None  # a header rate known to be wrong
    skip: int = 0  # leading T-pose frames of raw capture
    start_s: float = 0.0  # raw capture: where the watched span starts


def _generate(out: Path, song: str, seconds: float, *extra: str) -> None:
    cmd = [sys.executable, "-m", "engine", "generate", str(SONGS[song]), "--out", str(out), "--seconds",
           str(seconds), *extra]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def _play(out: Path, song: str, seconds: float, *extra: str) -> None:
    """The live path (``groovecast play --fast``: runtime, playout, recorders) recorded to BVH."""
    cmd = [sys.executable, "-m", "engine", "play", str(SONGS[song]), "--fast", "--seconds", str(seconds),
           "--backend", "torch", "--record", str(out), *extra]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def _write_real(work: Path, style: str, take: str, stem: str, seconds: float, start_s: float) -> list[Path]:
    """The engine's view of a real take (retargeted, metric, 30 fps) and the same staged, as BVH files."""
    from engine.frames import MODEL_FPS
    from engine.models.capture import capture_files, load_take
    from engine.models.pose_repr import Motion
    from engine.models.staging import stage_motion
    from engine.train.generate import write_motion_bvh

    data = SHARED / "data"
    files = [p for p in capture_files(data, style, takes=(take,))]
    out = []
    span = slice(int(start_s * MODEL_FPS), int((start_s + seconds) * MODEL_FPS))
    for p in files:
        m = load_take(p, style).motion
        m = Motion(m.skeleton, m.root_pos[span], m.rot[span], m.fps)
        role = "" if len(files) == 1 else ("_lead" if p.name.startswith("60") else "_follow")
        a = work / f"{stem}_engine{role}.bvh"
        write_motion_bvh(m, a)
        out.append(a)
        if len(files) == 1:  # staging partners one by one would break the couple (the couple model stages pairs)
            b = work / f"{stem}_staged{role}.bvh"
            write_motion_bvh(stage_motion(m, style=style), b)
            out.append(b)
    return out


def _write_switch(out: Path, song: str, seconds: float, at_s: float, first: str, then: str, seed: int = 0) -> None:
    """A solo dance that changes genre at ``at_s`` (the live generator, as ``eval --controls``' switch)."""
    from engine.analysis.analyze import dance_analysis
    from engine.audio.source import read_wav
    from engine.frames import MODEL_FPS
    from engine.models.conditioning import sequence_conditions
    from engine.models.pose_repr import Motion, metric_cmu_skeleton
    from engine.skeleton import rotations as R
    from engine.train.control_eval import Renderer
    from engine.train.generate import write_motion_bvh

    audio, sr = read_wav(SONGS[song])
    feats, period, nxt, _ = dance_analysis(audio, sr, None)
    r = Renderer(None)
    steps = int(seconds * MODEL_FPS) // r.model.frames_per_step
    cond = sequence_conditions(feats, period, nxt, steps)
    d = r.dance(cond, seed=seed, genre=first, switch=(int(at_s * MODEL_FPS) // r.model.frames_per_step, then))
    write_motion_bvh(Motion(metric_cmu_skeleton(), d.root, R.quat_to_matrix(d.quat), float(MODEL_FPS)), out)


def _write_keyframe_pose(out: Path) -> Path:
    """A one-frame BVH of a held-out real Indian pose (take 07 at 8 s: arms out), the keyframe's target."""
    from engine.models.capture import capture_files, load_take
    from engine.models.pose_repr import Motion
    from engine.train.generate import write_motion_bvh

    m = load_take(capture_files(SHARED / "data", "indian", takes=("07",))[0], "indian").motion
    f = 8 * 30
    write_motion_bvh(Motion(m.skeleton, m.root_pos[f : f + 1], m.rot[f : f + 1], m.fps), out)
    return out


def build_cases(names: list[str], work: Path, seconds: float, seed: int = 0) -> list[Case]:
    """Render (or reuse) the BVH files of the named cases into ``work`` (another ``seed``: into ``work/seedN``)."""
    if seed:
        work = work / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    s = str(seconds)

    def gen(name: str, title: str, song: str, *extra: str, couple: bool = False) -> None:
        out = work / f"{name}.bvh"
        files = [work / f"{name}_lead.bvh", work / f"{name}_follow.bvh"] if couple else [out]
        if not all(f.exists() for f in files):
            _generate(out, song, seconds, *extra, "--seed", str(seed))
        cases.append(Case(name, title, files))

    for name in names:
        if name == "salsa":
            gen(name, f"salsa solo, 'Lets Go Fishin', {s} s (groovecast generate --genre salsa)", "fishin",
                "--genre", "salsa")
        elif name == "indian":
            gen(name, f"indian solo, 'Vibe Ace', {s} s (--genre indian)", "vibe", "--genre", "indian")
        elif name == "modern":
            gen(name, f"modern solo, 'Sugar Plum Fairy', {s} s (--genre modern)", "plum", "--genre", "modern")
        elif name == "couple":
            gen(name, f"salsa couple, 'Lets Go Fishin', {s} s (--couple): lead dark, follower pale", "fishin",
                "--couple", couple=True)
        elif name in ("live_salsa", "live_couple"):  # the same dances through play's live path
            couple = name == "live_couple"
            out = work / f"{name}.bvh"
            files = [work / f"{name}_lead.bvh", work / f"{name}_follow.bvh"] if couple else [out]
            if not all(f.exists() for f in files):
                _play(out, "fishin", seconds, *(["--couple"] if couple else ["--genre", "salsa"]), "--seed", str(seed))
            cases.append(Case(name, f"{'salsa couple' if couple else 'salsa solo'}, 'Lets Go Fishin', {s} s, through "
                              "the live path (groovecast play --fast --record)", files))
        elif name == "salsa_vibe":  # the text cases' music without a text: what they are compared with
            gen(name, f"salsa solo, 'Vibe Ace', {s} s (no text: the text cases' baseline)", "vibe", "--genre", "salsa")
        elif name in ("arms_high", "arms_low", "spinning"):
            text = name.replace("_", " ")
            gen(name, f"salsa solo with --text '{text}', 'Vibe Ace', {s} s", "vibe", "--genre", "salsa",
                "--text", text)
        elif name in ("stay_in_place", "travel_across"):  # the travel pair, on modern (the style it failed on)
            text = {"stay_in_place": "stay in place", "travel_across": "travel across the floor"}[name]
            gen(name, f"modern solo with --text '{text}', 'Vibe Ace', {s} s", "vibe", "--genre", "modern",
                "--text", text)
        elif name == "keyframe":
            pose = _write_keyframe_pose(work / "keyframe_pose.bvh")
            gen(name, f"salsa solo with --keyframe (a real Indian pose) at 6 s, 'Vibe Ace', {s} s", "vibe",
                "--genre", "salsa", "--keyframe", f"{pose}@6")
        elif name == "switch":
            out = work / "switch.bvh"
            if not out.exists():
                print("switch: salsa -> modern at 6 s (live generator)", flush=True)
                _write_switch(out, "fishin", seconds, 6.0, "salsa", "modern", seed)
            cases.append(Case(name, f"genre switch salsa -> modern at 6 s, 'Lets Go Fishin', {s} s", [out]))
        elif name.startswith("real_"):
            style = name[5:]
            take, start = {"salsa": ("12", 10.0), "indian": ("07", 2.0), "modern": ("17", 0.0)}[style]
            stem = f"real_{style}"
            got = sorted(work.glob(f"{stem}_engine*.bvh")) + sorted(work.glob(f"{stem}_staged*.bvh"))
            if not got:
                got = _write_real(work, style, take, stem, seconds, start)
            engine_files = sorted(p for p in got if "_engine" in p.name)
            staged_files = sorted(p for p in got if "_staged" in p.name)
            if len(engine_files) == 2:  # lead before follow
                engine_files, staged_files = engine_files[::-1], staged_files[::-1]
            raw = _raw_files(style, take)
            src_fps, skip = {"salsa": (60.0, 0), "indian": (120.0, 1), "modern": (60.0, 1)}[style]
            cases.append(Case(f"{stem}_raw", f"real {style} take {take} as captured (raw file, this reader), "
                              f"{start:.0f}-{start + seconds:.0f} s", raw, normalise=True, fps=src_fps,
                              skip=skip, start_s=start))
            cases.append(Case(f"{stem}_engine", f"real {style} take {take} as the engine sees it (retargeted)",
                              engine_files))
            if len(staged_files) == 1:  # a couple is staged as a pair by the couple model, not one by one
                cases.append(Case(f"{stem}_staged", f"real {style} take {take} staged by the engine's stager",
                                  staged_files))
        else:
            raise SystemExit(f"unknown case {name!r}")
    return cases


def _raw_files(style: str, take: str) -> list[Path]:
    d = SHARED / "data"
    if style == "salsa":
        return [d / "cmu_salsa" / f"60_{take}_scaled.bvh", d / "cmu_salsa" / f"61_{take}_scaled.bvh"]
    if style == "indian":
        return [d / "cmu_indian" / f"indian_{take}.bvh"]
    return [d / "cmu_modern" / f"05_{take}.bvh"]


def case_bodies(case: Case, seconds: float) -> list[Body]:
    labels = ["lead", "follow"] if len(case.files) == 2 else ["dancer"]
    bodies = [load_body(p, lab, case.fps, case.normalise, case.skip) for p, lab in zip(case.files, labels,
                                                                                       strict=True)]
    if case.normalise:  # the watched span of the raw take, resampled to 30 fps for drawing
        for b in bodies:
            step = max(1, round(b.fps / 30))
            a = int(case.start_s * b.fps)
            b.pos = b.pos[a : a + int(seconds * b.fps) : step]
            b.fps = b.fps / step
        if len(bodies) == 2:  # one world frame: the pair's own floor
            floor = min(float(np.percentile(b.pos[:, b.feet, 1].min(axis=1), 5)) for b in bodies)
            for b in bodies:
                b.pos[..., 1] -= floor
    return bodies


# ------------------------------------------------------------------------------------------------ the web viewer
STATIC = ROOT / "streams" / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".glb": "model/gltf-binary"}


def serve_static(route: Any) -> None:
    """A Playwright route handler: the viewer page's files from ``streams/static`` (what the engine serves)."""
    path = STATIC / (route.request.url.split("/", 3)[3].split("?")[0] or "index.html")
    if path.is_file():
        route.fulfill(status=200, body=path.read_bytes(), content_type=_TYPES.get(path.suffix, "text/plain"))
    else:
        route.fulfill(status=404, body="")


def viewer_strip(case: Case, out: Path, shots: int = 6, size: tuple[int, int] = (400, 440)) -> Path:
    """The case in the web viewer (avatars, then its stick figures), fed in real time through the stream path."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from engine.skeleton.motion import load_motion
    from streams.player import MotionPlayer
    from streams.wire_json import encode_json, hello_message

    players = [MotionPlayer(load_motion(p), 30, performer=i) for i, p in enumerate(case.files)]
    n = min(pl.motion.num_frames for pl in players)
    grab = set(np.linspace(0, n - 1, shots + 1)[1:].astype(int).tolist())
    rows: list[list[Any]] = [[], []]

    for r, view in enumerate(("avatar", "stick")):
        sockets: list[Any] = []

        def keep(ws: Any, into: list[Any] = sockets) -> None:
            into.append(ws)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.route("http://watch.invalid/**", serve_static)
            page.route_web_socket("**/ws*", keep)
            page.goto(f"http://watch.invalid/index.html?view={view}")
            page.wait_for_function("window.groovecast && window.groovecast.connected", timeout=30_000)
            ws = sockets[0]
            page.add_style_tag(content="#hud, #tempo { display: none !important; }")  # the dancers only
            ids = [pl.performer for pl in players]
            ws.send(hello_message(time.monotonic_ns(), ids, [ids] if len(ids) == 2 else None))  # a couple: one unit
            if view == "avatar":
                page.wait_for_function("window.groovecast.avatarReady", timeout=60_000)
            t0 = time.monotonic()
            for f in range(n):
                for pl in players:
                    ns = time.monotonic_ns()
                    ws.send(encode_json(pl.frame_at(f, ns), ns, pl.motion.skeleton))
                wait = t0 + (f + 1) / 30 - time.monotonic()
                page.wait_for_timeout(max(1.0, 1000 * wait))
                if f in grab:
                    page.evaluate("window.groovecast.freeze = true")
                    page.wait_for_timeout(120)
                    shot = out.parent / f".{out.stem}_{view}_{f}.png"
                    page.screenshot(path=str(shot))
                    rows[r].append((f, Image.open(shot).convert("RGB")))
                    shot.unlink()
                    page.evaluate("window.groovecast.freeze = false")
                    t0 = time.monotonic() - (f + 1) / 30  # keep real-time pacing after the pause
            browser.close()
    w, h = size
    img = Image.new("RGB", (w * shots, h * 2), "white")
    for r, row in enumerate(rows):
        for i, (_f, im) in enumerate(row[:shots]):
            img.paste(im, (i * w, r * h))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    print(json.dumps({"viewer": str(out), "frames": sorted(grab)}), flush=True)
    return out


ALL = ["salsa", "indian", "modern", "couple", "live_salsa", "live_couple", "switch", "salsa_vibe", "arms_high",
       "arms_low", "spinning", "stay_in_place", "travel_across", "keyframe", "real_salsa", "real_indian", "real_modern"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.watch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(ALL), help=f"comma-separated, from {','.join(ALL)}")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each dance (default 12)")
    ap.add_argument("--work", type=Path, default=ROOT / ".cache" / "watch" / "bvh", help="where the BVH files go")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "watch" / "out", help="where the PNGs go")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of the generated dances (default 0)")
    ap.add_argument("--no-browser", action="store_true", help="stick sheets only (no headless Chromium)")
    ap.add_argument("--viewer-cases", default="salsa,couple,real_salsa_engine",
                    help="cases also shown in the web viewer (default salsa,couple,real_salsa_engine)")
    args = ap.parse_args(argv)
    names = [c for c in args.cases.split(",") if c]
    cases = build_cases(names, args.work, args.seconds, args.seed)
    out = args.out / f"seed{args.seed}" if args.seed else args.out
    for c in cases:
        title = c.title if not args.seed or c.name.startswith("real_") else f"{c.title}, seed {args.seed}"
        path = sheet(case_bodies(c, args.seconds), title, out / f"{c.name}_sheet.png")
        print(json.dumps({"sheet": str(path)}), flush=True)
    if not args.no_browser:
        wanted = set(args.viewer_cases.split(","))
        for c in cases:
            if c.name in wanted and not c.normalise:
                viewer_strip(c, out / f"{c.name}_viewer.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
