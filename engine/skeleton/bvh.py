"""BVH motion reader and writer for any channel order; errors name the file and line at fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.skeleton import rotations as R
from engine.skeleton.skeleton import Skeleton, get_skeleton, skeleton_names

_POS = ("Xposition", "Yposition", "Zposition")
_ROT = ("Xrotation", "Yrotation", "Zrotation")
_ALL_CHANNELS = _POS + _ROT


#: Parser limits: a hierarchy beyond them is refused with a line number before anything large is built.
MAX_JOINTS = 1024
MAX_DEPTH = 64
#: Frame times outside this range (10 kHz .. 1 fps) are refused: an hour-long frame would make a player
#: or resampler build millions of frames out of a few lines.
MIN_FRAME_TIME = 1e-4
MAX_FRAME_TIME = 1.0
MAX_BVH_BYTES = 512 * 1024 * 1024


class BvhError(ValueError):
    """A malformed BVH file; the message names the file and line."""


@dataclass
class BvhMotion:
    """A BVH file in memory. Angles stay as written (degrees, per-joint channel order).

    Attributes:
        skeleton: the hierarchy; named after a registered skeleton when joint names and parents match.
        frame_time: seconds per frame.
        channels: per joint, the channel names in file order.
        data: ``[N, C]`` raw channel values in file order.
    """

    skeleton: Skeleton
    frame_time: float
    channels: tuple[tuple[str, ...], ...]
    data: np.ndarray  # [N, C] float64

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    def _columns(self) -> list[int]:
        starts = []
        c = 0
        for ch in self.channels:
            starts.append(c)
            c += len(ch)
        return starts

    @property
    def rotation_orders(self) -> tuple[str, ...]:
        """Per joint, the order of its rotation channels as written (``""`` if it has none)."""
        return tuple("".join(c[0] for c in ch if c in _ROT) for ch in self.channels)

    @property
    def euler(self) -> np.ndarray:
        """``[N, J, 3]`` degrees, each joint's angles in its own channel order (zeros where absent)."""
        out = np.zeros((self.num_frames, self.skeleton.num_joints, 3))
        for j, (start, ch) in enumerate(zip(self._columns(), self.channels, strict=True)):
            k = 0
            for i, name in enumerate(ch):
                if name in _ROT:
                    out[:, j, k] = self.data[:, start + i]
                    k += 1
        return out

    def joint_positions_channels(self, joint: int) -> np.ndarray | None:
        """``[N, 3]`` (x, y, z) from a joint's position channels, or None if it has none."""
        ch = self.channels[joint]
        if not any(c in _POS for c in ch):
            return None
        start = self._columns()[joint]
        out = np.zeros((self.num_frames, 3))
        for i, name in enumerate(ch):
            if name in _POS:
                out[:, _POS.index(name)] = self.data[:, start + i]
        return out

    @property
    def root_positions(self) -> np.ndarray:
        """``[N, 3]`` root joint positions: position channels plus the root OFFSET (BVH semantics)."""
        pos = self.joint_positions_channels(0)
        if pos is None:
            pos = np.zeros((self.num_frames, 3))
        return pos + self.skeleton.offsets[0]

    @property
    def local_rot_mats(self) -> np.ndarray:
        """``[N, J, 3, 3]`` joint-local rotation matrices."""
        eul = self.euler
        out = np.empty((self.num_frames, self.skeleton.num_joints, 3, 3))
        for j, order in enumerate(self.rotation_orders):
            if len(order) == 3:
                out[:, j] = R.euler_to_matrix(eul[:, j], order, degrees=True)
            elif order == "":
                out[:, j] = np.eye(3)
            else:  # one or two rotation channels: compose what is there
                m = np.broadcast_to(np.eye(3), (self.num_frames, 3, 3)).copy()
                for k, ax in enumerate(order):
                    m = m @ R.axis_rotation_matrix(ax, np.deg2rad(eul[:, j, k]))
                out[:, j] = m
        return out

    @property
    def local_quats(self) -> np.ndarray:
        """``[N, J, 4]`` joint-local quaternions (w, x, y, z)."""
        return R.matrix_to_quat(self.local_rot_mats)


class _Lines:
    """Tokenised lines with their 1-based numbers, for error messages."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.pos = 0

    def error(self, msg: str, line_no: int | None = None) -> BvhError:
        n = line_no if line_no is not None else self.pos
        content = self.lines[n - 1].strip()[:80] if 0 < n <= len(self.lines) else "<end of file>"
        return BvhError(f"{self.path}:{n}: {msg} (line: {content!r})")

    def next_tokens(self) -> tuple[list[str], int]:
        while self.pos < len(self.lines):
            self.pos += 1
            toks = self.lines[self.pos - 1].split()
            if toks:
                return toks, self.pos
        raise self.error("unexpected end of file", len(self.lines) + 1)


def _floats(lines: _Lines, toks: Sequence[str], n: int, what: str, line_no: int) -> list[float]:
    if len(toks) != n:
        raise lines.error(f"{what} needs {n} numbers, got {len(toks)}", line_no)
    try:
        return [float(t) for t in toks]
    except ValueError:
        raise lines.error(f"{what}: not a number", line_no) from None


def _match_registered(names: tuple[str, ...], parents: tuple[int, ...]) -> str | None:
    for reg in skeleton_names():
        sk = get_skeleton(reg)
        if sk.joint_names == names and sk.parents == parents:
            return reg
    return None


def parse_bvh(text: str, source: str = "<string>") -> BvhMotion:
    """Parse BVH text; ``source`` names it in errors. Linear in the size of the text, within the limits above."""
    lines = _Lines(source, text.removeprefix("\ufeff"))  # a UTF-8 byte-order mark is allowed
    toks, ln = lines.next_tokens()
    if toks[0].upper() != "HIERARCHY":
        raise lines.error("expected HIERARCHY", ln)
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}

    seen: set[str] = set()  # joint names so far (a list lookup made parsing quadratic)

    def parse_joint(parent: int, kind: str, name: str, ln0: int, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise lines.error(f"joints nested deeper than {MAX_DEPTH}", ln0)
        toks, ln = lines.next_tokens()
        if toks != ["{"]:
            raise lines.error(f"expected '{{' after {kind} {name}", ln)
        if kind == "End":
            toks, ln = lines.next_tokens()
            if toks[0] != "OFFSET":
                raise lines.error("expected OFFSET in End Site", ln)
            end_sites[parent] = np.array(_floats(lines, toks[1:], 3, "OFFSET", ln))
            toks, ln = lines.next_tokens()
            if toks != ["}"]:
                raise lines.error("expected '}' closing End Site", ln)
            return
        if name in seen:
            raise lines.error(f"duplicate joint name {name!r}", ln0)
        if len(names) >= MAX_JOINTS:
            raise lines.error(f"more than {MAX_JOINTS} joints", ln0)
        idx = len(names)
        names.append(name)
        seen.add(name)
        parents.append(parent)
        toks, ln = lines.next_tokens()
        if toks[0] != "OFFSET":
            raise lines.error(f"expected OFFSET for joint {name}", ln)
        offsets.append(_floats(lines, toks[1:], 3, "OFFSET", ln))
        toks, ln = lines.next_tokens()
        if toks[0] != "CHANNELS":
            raise lines.error(f"expected CHANNELS for joint {name}", ln)
        try:
            n = int(toks[1])
        except (IndexError, ValueError):
            raise lines.error("CHANNELS needs a count", ln) from None
        ch = tuple(toks[2:])
        if len(ch) != n:
            raise lines.error(f"CHANNELS says {n} but lists {len(ch)}", ln)
        bad = [c for c in ch if c not in _ALL_CHANNELS]
        if bad:
            raise lines.error(f"unknown channel {bad[0]!r}; known: {', '.join(_ALL_CHANNELS)}", ln)
        if len(set(ch)) != len(ch):
            raise lines.error("a channel is repeated", ln)
        channels.append(ch)
        while True:
            toks, ln = lines.next_tokens()
            if toks == ["}"]:
                return
            if toks[0] == "JOINT" and len(toks) == 2:
                parse_joint(idx, "JOINT", toks[1], ln, depth + 1)
            elif toks[0] == "End" and toks[1:] == ["Site"]:
                parse_joint(idx, "End", "Site", ln, depth + 1)
            else:
                raise lines.error(f"expected JOINT, End Site or '}}' inside joint {name}", ln)

    toks, ln = lines.next_tokens()
    if toks[0] != "ROOT" or len(toks) != 2:
        raise lines.error("expected 'ROOT <name>'", ln)
    parse_joint(-1, "JOINT", toks[1], ln)

    toks, ln = lines.next_tokens()
    if toks[0] != "MOTION":
        raise lines.error("expected MOTION after the hierarchy (only one ROOT is supported)", ln)
    toks, ln = lines.next_tokens()
    if toks[0] != "Frames:" or len(toks) != 2:
        raise lines.error("expected 'Frames: <count>'", ln)
    try:
        n_frames = int(toks[1])
    except ValueError:
        raise lines.error("frame count is not an integer", ln) from None
    toks, ln = lines.next_tokens()
    if toks[:2] != ["Frame", "Time:"] or len(toks) != 3:
        raise lines.error("expected 'Frame Time: <seconds>'", ln)
    frame_time = _floats(lines, toks[2:], 1, "Frame Time", ln)[0]
    if not MIN_FRAME_TIME <= frame_time <= MAX_FRAME_TIME:
        raise lines.error(f"Frame Time must be between {MIN_FRAME_TIME} and {MAX_FRAME_TIME} s, got {frame_time}", ln)
    if n_frames < 0:
        raise lines.error("frame count is negative", ln)
    n_ch = sum(len(c) for c in channels)
    rows = []
    for f in range(n_frames):
        try:
            toks, ln = lines.next_tokens()
        except BvhError:
            raise lines.error(f"file says {n_frames} frames but ends after {f}", len(lines.lines) + 1) from None
        rows.append(_floats(lines, toks, n_ch, f"frame {f}", ln))
    data = np.array(rows, dtype=np.float64).reshape(n_frames, n_ch)
    if not np.all(np.isfinite(data)):
        bad = int(np.argwhere(~np.isfinite(data))[0][0])
        raise BvhError(f"{source}: frame {bad} contains a non-finite value")
    names_t = tuple(names)
    parents_t = tuple(parents)
    reg = _match_registered(names_t, parents_t)
    base = get_skeleton(reg) if reg else None
    skel = Skeleton(
        name=reg or Path(source).stem,
        joint_names=names_t,
        parents=parents_t,
        offsets=np.array(offsets),
        end_sites=end_sites,
        unity_bones=dict(base.unity_bones) if base else {},
    )
    return BvhMotion(skeleton=skel, frame_time=frame_time, channels=tuple(channels), data=data)


def read_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file; raises :class:`BvhError` naming the line at fault."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BVH_BYTES:
            raise BvhError(f"{p}: {size / 1e6:.0f} MB is larger than the {MAX_BVH_BYTES / 1e6:.0f} MB a BVH may be")
        text = p.read_text(encoding="utf-8-sig", errors="strict")
    except FileNotFoundError:
        raise FileNotFoundError(f"BVH file not found: {p}") from None
    except UnicodeDecodeError as exc:
        raise BvhError(f"{p}: not a text file ({exc})") from None
    except OSError as exc:
        raise BvhError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    return parse_bvh(text, str(p))


def _fmt(v: float) -> str:
    s = f"{v:.6f}"
    return "0.000000" if s == "-0.000000" else s


def format_bvh(
    skeleton: Skeleton,
    root_positions: np.ndarray,
    frame_time: float,
    *,
    euler: np.ndarray | None = None,
    local_rot_mats: np.ndarray | None = None,
    rotation_orders: str | Sequence[str] = "ZXY",
) -> str:
    """BVH text for a motion.

    Args:
        skeleton: hierarchy to write (offsets in file units).
        root_positions: ``[N, 3]`` root positions (written as the root's position channels minus its offset).
        frame_time: seconds per frame.
        euler: ``[N, J, 3]`` degrees in each joint's ``rotation_orders``; written as given.
        local_rot_mats: ``[N, J, 3, 3]``; converted to Euler in ``rotation_orders`` when ``euler`` is None.
        rotation_orders: one order for all joints or one per joint.
    """
    j = skeleton.num_joints
    orders = [rotation_orders] * j if isinstance(rotation_orders, str) else list(rotation_orders)
    if len(orders) != j:
        raise ValueError(f"need {j} rotation orders, got {len(orders)}")
    root_positions = np.asarray(root_positions, dtype=np.float64)
    n = root_positions.shape[0]
    if euler is None:
        if local_rot_mats is None:
            raise ValueError("give euler angles or local rotation matrices")
        local_rot_mats = np.asarray(local_rot_mats, dtype=np.float64)
        if local_rot_mats.shape != (n, j, 3, 3):
            raise ValueError(f"local_rot_mats must be [{n}, {j}, 3, 3], got {local_rot_mats.shape}")
        euler = np.stack([R.matrix_to_euler(local_rot_mats[:, k], orders[k]) for k in range(j)], axis=1)
    euler = np.asarray(euler, dtype=np.float64)
    if euler.shape != (n, j, 3):
        raise ValueError(f"euler must be [{n}, {j}, 3], got {euler.shape}")
    if root_positions.shape != (n, 3):
        raise ValueError(f"root_positions must be [N, 3], got {root_positions.shape}")

    out: list[str] = ["HIERARCHY"]
    children: dict[int, list[int]] = {i: skeleton.children(i) for i in range(j)}

    def write_joint(i: int, depth: int) -> None:
        ind = "\t" * depth
        kw = "ROOT" if i == 0 else "JOINT"
        out.append(f"{ind}{kw} {skeleton.joint_names[i]}")
        out.append(f"{ind}{{")
        out.append(f"{ind}\tOFFSET " + " ".join(_fmt(v) for v in skeleton.offsets[i]))
        rot = " ".join(f"{ax}rotation" for ax in orders[i].upper())
        if i == 0:
            out.append(f"{ind}\tCHANNELS 6 Xposition Yposition Zposition {rot}")
        else:
            out.append(f"{ind}\tCHANNELS 3 {rot}")
        for c in children[i]:
            write_joint(c, depth + 1)
        if i in skeleton.end_sites:
            out.append(f"{ind}\tEnd Site")
            out.append(f"{ind}\t{{")
            out.append(f"{ind}\t\tOFFSET " + " ".join(_fmt(v) for v in skeleton.end_sites[i]))
            out.append(f"{ind}\t}}")
        out.append(f"{ind}}}")

    write_joint(0, 0)
    out.append("MOTION")
    out.append(f"Frames: {n}")
    out.append(f"Frame Time: {frame_time:.6f}" if frame_time >= 1e-3 else f"Frame Time: {frame_time!r}")
    # Channel order in the MOTION section follows the depth-first order of the hierarchy.
    dfs: list[int] = []

    def visit(i: int) -> None:
        dfs.append(i)
        for c in children[i]:
            visit(c)

    visit(0)
    pos = root_positions - skeleton.offsets[0]
    for f in range(n):
        vals = list(pos[f])
        for i in dfs:
            vals.extend(euler[f, i])
        out.append(" ".join(_fmt(v) for v in vals))
    return "\n".join(out) + "\n"


def write_bvh(
    path: str | Path,
    skeleton: Skeleton,
    root_positions: np.ndarray,
    frame_time: float,
    *,
    euler: np.ndarray | None = None,
    local_rot_mats: np.ndarray | None = None,
    rotation_orders: str | Sequence[str] = "ZXY",
) -> None:
    """Write a BVH file (see :func:`format_bvh`); reading it back gives the same angles to 1e-6 degrees.

    Joints are written depth-first; when the skeleton's joint order is not depth-first the file's joint
    order (and so a reader's) is the depth-first one.
    """
    Path(path).write_text(
        format_bvh(
            skeleton, root_positions, frame_time, euler=euler, local_rot_mats=local_rot_mats,
            rotation_orders=rotation_orders,
        ),
        encoding="utf-8",
    )


def write_bvh_motion(path: str | Path, motion: BvhMotion) -> None:
    """Write a :class:`BvhMotion` back out with each joint's original rotation order."""
    orders = [o if len(o) == 3 else "ZXY" for o in motion.rotation_orders]
    write_bvh(path, motion.skeleton, motion.root_positions, motion.frame_time, euler=motion.euler,
              rotation_orders=orders)
