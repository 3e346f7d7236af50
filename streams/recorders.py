"""Recorders that stream a pose stream to BVH (opens in Blender) or NPZ (arrays plus stamps) as the show runs.

Both write as they go and flush at least once per second of output (every ``fps`` frames), so a crash, a
``kill -9`` or a full disk keeps everything flushed before it; memory does not grow with the length of
the show. The output is opened when the recorder is made, so an unwritable path fails before the show.

* **BVH**: the hierarchy and a fixed-width ``Frames:`` line are written first; each flush appends the frame
  lines, then rewrites the count in place. The count is only ever raised after the lines it counts are on
  disk, so the file reads back at any moment (a reader ignores a torn line past the count).
* **NPZ**: a zip archive cannot be read back when it is cut short, so frames stream into ``FILE.npz.partial``
  (a JSON header, then one ``.npy`` record per flush; :func:`read_partial` reads every complete record).
  A clean end (also Ctrl-C and SIGTERM) turns it into ``FILE.npz`` and removes it; after a crash or
  when the archive cannot be written (full disk), the ``.partial`` stays and ``groovecast recover FILE``
  (or :func:`load_recording`) turns it into the NPZ.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.bvh import format_bvh
from engine.skeleton.skeleton import Skeleton, get_skeleton

log = logging.getLogger(__name__)

_COUNT_WIDTH = 12  # digits reserved for the BVH frame count (rewritten in place)
PARTIAL_MAGIC = b"GROOVECAST-NPZ-PARTIAL 1\n"


class RecorderError(OSError):
    """A recording that cannot be written or read; the message names the file and the problem."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Recorder:
    """Buffers one performer's frames and appends them to the file every ``flush_frames`` frames."""

    suffix = ""

    def __init__(self, path: str | Path, skeleton: Skeleton | None = None, performer: int | None = None,
                 flush_frames: int | None = None) -> None:
        self.path = Path(path)
        self.skeleton = skeleton
        self.performer = performer
        self.flush_frames = flush_frames  # None: one second of frames (fps of the first frame)
        self.frames: list[PoseFrame] = []  # not yet written
        self.count = 0  # frames on disk
        self.skipped = 0
        self.dropped = 0  # frames lost after a write error
        self.error: str | None = None
        self.closed = False
        self._started = False
        self.out_path = self._open_target()

    def _open_target(self) -> Path:
        target = self.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(target.with_name(target.name + self.suffix), os.O_RDWR | os.O_CREAT | os.O_TRUNC,
                               0o644)
        except OSError as exc:
            raise RecorderError(f"cannot record to {target}: {exc.strerror or exc}") from None
        return target.with_name(target.name + self.suffix)

    def __call__(self, frame: PoseFrame) -> None:
        self.record(frame)

    def record(self, frame: PoseFrame) -> None:
        if self.closed:
            raise RuntimeError(f"recorder for {self.path} is closed")
        if self.performer is None:
            self.performer = frame.performer
        if frame.performer != self.performer:
            return
        if self.skeleton is None:
            self.skeleton = get_skeleton(frame.skeleton)
        if frame.rotations.shape != (self.skeleton.num_joints, 4):
            # a live stream must not die on one bad frame: skip it, count it, say why once
            self.skipped += 1
            if self.skipped == 1:
                log.warning("recorder %s: skipping frames with rotations %s (skeleton %r has %d joints)",
                            self.path, frame.rotations.shape, self.skeleton.name, self.skeleton.num_joints)
            return
        if self.error is not None:
            self.dropped += 1
            return
        self.frames.append(frame)
        every = self.flush_frames or max(1, round(frame.fps or 30.0))
        if len(self.frames) >= every:
            self.flush()

    def flush(self) -> None:
        """Append the buffered frames to the file (a write error stops the recording, keeping what is written)."""
        if not self.frames or self.error is not None:
            return
        frames, self.frames = self.frames, []
        try:
            if not self._started:
                self._start(frames[0])
                self._started = True
            self._append(frames)
            self.count += len(frames)
            self._commit()
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self.dropped += len(frames)
            log.error("recorder %s: cannot write (%s); stopped recording, the file keeps the first %d frames",
                      self.path, self.error, self.count)

    def close(self) -> Path | None:
        """Flush and finish the file; returns its path, or None when nothing was recorded."""
        if self.closed:
            return self.path if self.count else None
        self.flush()
        self.closed = True
        os.close(self._fd)
        if self.count == 0:
            self.out_path.unlink(missing_ok=True)
            return None
        return self._finish()

    def _finish(self) -> Path | None:
        return self.path

    def _start(self, first: PoseFrame) -> None:
        raise NotImplementedError

    def _append(self, frames: list[PoseFrame]) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        """Make the appended frames count (after they are written)."""

    @staticmethod
    def _arrays(frames: list[PoseFrame]) -> tuple[np.ndarray, np.ndarray]:
        root = np.stack([np.asarray(f.root_position, dtype=np.float64) for f in frames])  # [N, 3]
        rot = np.stack([np.asarray(f.rotations, dtype=np.float64) for f in frames])  # [N, J, 4]
        return root, rot


class BvhRecorder(_Recorder):
    """Streams a BVH with every joint's rotation channels in ``rotation_order`` (default ZXY, as CMU)."""

    def __init__(self, path: str | Path, skeleton: Skeleton | None = None, performer: int | None = None,
                 rotation_order: str = "ZXY", flush_frames: int | None = None) -> None:
        super().__init__(path, skeleton, performer, flush_frames)
        self.rotation_order = rotation_order
        self._count_at = 0
        self._end = 0

    def _format(self, frames: list[PoseFrame]) -> str:
        assert self.skeleton is not None
        root, rot = self._arrays(frames)
        return format_bvh(self.skeleton, root, 1.0 / (frames[0].fps or 30.0), local_rot_mats=R.quat_to_matrix(rot),
                          rotation_orders=self.rotation_order)

    def _start(self, first: PoseFrame) -> None:
        text = self._format([first])
        head, _, rest = text.partition("\nFrames: ")
        frame_time_line = rest.split("\n")[1]
        header = (head + "\nFrames: ").encode("utf-8")
        self._count_at = len(header)
        _write_all(self._fd, header + b"0".ljust(_COUNT_WIDTH) + b"\n" + frame_time_line.encode("utf-8") + b"\n")
        self._end = os.lseek(self._fd, 0, os.SEEK_CUR)

    def _append(self, frames: list[PoseFrame]) -> None:
        lines = self._format(frames).split("\n")
        i = next(k for k, line in enumerate(lines) if line.startswith("Frame Time:"))
        body = "\n".join(lines[i + 1:]).encode("utf-8")  # the frame lines, ending in "\n"
        os.lseek(self._fd, self._end, os.SEEK_SET)
        try:
            _write_all(self._fd, body)
        finally:
            self._end = os.lseek(self._fd, 0, os.SEEK_CUR)

    def _commit(self) -> None:
        # Overwrites bytes already on disk: needs no new space, so it works on a full disk too.
        os.pwrite(self._fd, str(self.count).encode("ascii").ljust(_COUNT_WIDTH), self._count_at)


def _frame_dtype(n_joints: int) -> np.dtype:
    return np.dtype([
        ("root_position", "<f4", (3,)), ("rotations", "<f4", (n_joints, 4)), ("positions", "<f4", (n_joints, 3)),
        ("has_positions", "?"), ("frame_index", "<i8"), ("sample_index", "<i8"), ("capture_ns", "<i8"),
        ("time_s", "<f8"), ("bpm", "<f4"), ("beat_phase", "<f4"), ("beat", "?"), ("energy", "<f4"),
    ])


class NpzRecorder(_Recorder):
    """Streams arrays (root, rotations, positions) with per-frame stamps to ``FILE.npz.partial``; NPZ at close."""

    suffix = ".partial"

    def _start(self, first: PoseFrame) -> None:
        assert self.skeleton is not None
        head = json.dumps({
            "fps": float(first.fps), "performer": int(self.performer or 0), "skeleton": self.skeleton.name,
            "joint_names": list(self.skeleton.joint_names), "parents": list(self.skeleton.parents),
            "offsets": np.asarray(self.skeleton.offsets, dtype=np.float64).tolist(),
        }).encode("utf-8")
        _write_all(self._fd, PARTIAL_MAGIC + struct.pack("<Q", len(head)) + head)

    def _append(self, frames: list[PoseFrame]) -> None:
        assert self.skeleton is not None
        rec = np.zeros(len(frames), dtype=_frame_dtype(self.skeleton.num_joints))
        for i, f in enumerate(frames):
            rec[i]["root_position"] = f.root_position
            rec[i]["rotations"] = f.rotations
            if f.positions is not None:
                rec[i]["positions"] = f.positions
                rec[i]["has_positions"] = True
            for k in ("frame_index", "sample_index", "capture_ns", "time_s", "bpm", "beat_phase", "beat", "energy"):
                rec[i][k] = getattr(f, k)
        buf = io.BytesIO()
        np.save(buf, rec, allow_pickle=False)
        _write_all(self._fd, buf.getvalue())  # a torn record at the end is skipped by read_partial

    def _finish(self) -> Path | None:
        try:
            write_npz(self.path, read_partial(self.out_path))
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            log.error("recorder %s: cannot write the archive (%s); the frames are kept in %s "
                      "(`groovecast recover %s` makes the NPZ)", self.path, exc.strerror or exc, self.out_path,
                      self.out_path)
            self.error = self.error or (exc.strerror or str(exc))
            return self.out_path
        self.out_path.unlink(missing_ok=True)
        return self.path


def read_partial(path: str | Path) -> dict[str, Any]:
    """Every complete frame of a ``.npz.partial`` stream, as the arrays an NPZ recording holds.

    Raises:
        RecorderError: not such a file, or no frame in it.
    """
    p = Path(path)
    with open(p, "rb") as f:
        if f.read(len(PARTIAL_MAGIC)) != PARTIAL_MAGIC:
            raise RecorderError(f"{p}: not a groovecast partial recording")
        raw = f.read(8)
        (n,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
        if not 0 < n < 16 * 1024 * 1024:
            raise RecorderError(f"{p}: header cut short or corrupt")
        try:
            head = json.loads(f.read(n))
        except ValueError:
            raise RecorderError(f"{p}: header cut short or corrupt") from None
        chunks = []
        while True:
            try:
                chunks.append(np.load(f, allow_pickle=False))
            except (ValueError, EOFError, OSError):  # the end, or a record cut short by a crash or a full disk
                break
    if not chunks:
        raise RecorderError(f"{p}: no complete frame in the recording")
    rec = np.concatenate(chunks)
    arrays: dict[str, Any] = {k: rec[k] for k in ("root_position", "rotations", "frame_index", "sample_index",
                                                   "capture_ns", "time_s", "bpm", "beat_phase", "beat", "energy")}
    if bool(rec["has_positions"].all()):
        arrays["positions"] = rec["positions"]
    arrays.update(
        fps=np.float64(head["fps"]), performer=np.int64(head["performer"]), skeleton=np.str_(head["skeleton"]),
        joint_names=np.array(head["joint_names"]), parents=np.array(head["parents"], dtype=np.int64),
        offsets=np.array(head["offsets"], dtype=np.float64),
    )
    return arrays


def write_npz(path: str | Path, arrays: dict[str, Any]) -> None:
    """Write the arrays to ``path`` through a temporary name, so ``path`` is a whole archive or absent."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: float poses barely compress, and Ctrl-C must end quickly
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def recover(path: str | Path) -> Path:
    """Turn ``FILE.npz.partial`` (or the ``FILE.npz`` it belongs to) into ``FILE.npz``; returns that path."""
    p = Path(path)
    partial = p if p.name.endswith(".npz.partial") else p.with_name(p.name + ".partial")
    if not partial.exists():
        raise RecorderError(f"no partial recording at {partial}")
    target = partial.with_name(partial.name[: -len(".partial")])
    write_npz(target, read_partial(partial))
    partial.unlink()
    return target


def load_recording(path: str | Path) -> dict[str, Any]:
    """The arrays of an NPZ recording, from ``FILE.npz`` or, after a crash, from ``FILE.npz.partial``."""
    p = Path(path)
    if p.name.endswith(".partial"):
        return read_partial(p)
    if not p.exists() and p.with_name(p.name + ".partial").exists():
        return read_partial(p.with_name(p.name + ".partial"))
    with np.load(p, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def recorder_for(path: str | Path, skeleton: Skeleton | None = None, performer: int | None = None) -> _Recorder:
    """A BVH or NPZ recorder chosen by the file suffix; the file is created now (errors: RecorderError).

    ``performer``: the one it records (default: the first it sees; the others are skipped)."""
    p = Path(path)
    if p.suffix.lower() == ".bvh":
        return BvhRecorder(p, skeleton, performer)
    if p.suffix.lower() == ".npz":
        return NpzRecorder(p, skeleton, performer)
    raise ValueError(f"cannot record to {p.name!r}: use a .bvh or .npz file name")
