"""Controls: validate control messages from any thread, apply them on the engine thread between steps.

Semantic checks (known performer, genre the model has, a model with text or keyframe input, a keyframe's
joint count) happen at :meth:`ControlDesk.submit`, so a WebSocket/OSC sender gets the reason at once as a
``ValueError``; the change itself is queued (bounded) and applied by :meth:`ControlDesk.apply` before the
next step. Text prompts are embedded on the :class:`~engine.runtime.text_embedder.TextEmbedder`'s thread
(never on the caller's or the engine's) and queued when ready; of the keyframes queued for a performer only
the newest is applied (each costs an encode on the engine thread). Checks use the model's
:class:`~engine.models.protocol.Capabilities`, never its kind.

A control that changes what the model generates (a new genre, text or energy, a keyframe, a reset) is
reported to the ``replan`` hook of :meth:`ControlDesk.apply` with the performers it addresses *before* it is
applied, so the runtime can discard those performers' generated-but-unplayed steps first (the look-ahead) and
the control reaches the next step that plays.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from engine.frames import ControlMessage
from engine.models.conditioning import genre_id
from engine.models.protocol import MotionModel
from engine.runtime.text_embedder import TextEmbedder, coalesce_keyframes

log = logging.getLogger(__name__)

KINDS = ("genre", "text", "keyframe", "intensity", "energy", "reset")


class ControlDesk:
    """The runtime's control input (see the module doc).

    Args:
        model: the motion model whose performers are controlled.
        set_intensity: playout hook, ``(pid, 0..1)``: blend between the idle pose and the dance.
        current_pose: playout hook, ``pid -> (root [3], quat [J, 4])``: the newest generated pose, which a
            keyframe without rotations keeps.
        texts: embeds text prompts off the caller's thread (default: the bundled sentence model).
    """

    def __init__(self, model: MotionModel, set_intensity: Callable[[int, float], None],
                 current_pose: Callable[[int], tuple[np.ndarray, np.ndarray]],
                 texts: TextEmbedder | None = None) -> None:
        self.model = model
        self.texts = texts or TextEmbedder()
        self.set_intensity = set_intensity
        self.current_pose = current_pose
        self._queue: deque[ControlMessage] = deque(maxlen=256)
        self.applied = 0
        self.errors: list[str] = []

    def submit(self, msg: ControlMessage) -> None:
        """Accept a control from any thread; raises ValueError with the reason if it cannot apply."""
        pids = self.model.performer_ids()
        if msg.performer != -1 and msg.performer not in pids:
            raise ValueError(f"no performer {msg.performer}; performers are {pids}")
        caps = self.model.capabilities
        if msg.kind == "genre":
            gid = genre_id(str(msg.value))
            if gid >= caps.n_genres:
                raise ValueError(f"genre {msg.value!r} is not in this model (it has {caps.n_genres})")
        elif msg.kind == "text":
            if not caps.text:
                raise ValueError("this model has no text control")
            if msg.value:  # embedded on the embedder's thread; applied before the first step after that
                m = msg
                self.texts.request(str(msg.value), lambda emb: self._queue.append(
                    ControlMessage(m.sample_index, m.capture_ns, "text", m.performer, emb)))
                return
        elif msg.kind == "keyframe":
            if not caps.keyframes:
                raise ValueError("this model has no keyframe slots")
            n_rot = len(msg.value.get("rotations", ())) if isinstance(msg.value, dict) else 0
            if n_rot and n_rot != self.model.n_joints:
                raise ValueError(f"keyframe has {n_rot} rotations; the skeleton has {self.model.n_joints} joints")
        elif msg.kind not in KINDS:
            raise ValueError(f"unknown control kind {msg.kind!r}")
        self._queue.append(msg)

    def apply(self, replan: Callable[[list[int]], None] | None = None) -> None:
        """Apply the queued controls (engine thread); one bad control never stops the engine.

        Args:
            replan: called first, once, with the performers (in model order) whose generated motion the queued
                controls change (:meth:`reshaped`), when there are any.
        """
        queued = []
        while self._queue:
            queued.append(self._queue.popleft())
        msgs = coalesce_keyframes(queued)  # a keyframe flood costs one encode per performer per step
        if replan is not None:
            pids = self.reshaped(msgs)
            if pids:
                replan(pids)
        for msg in msgs:
            try:
                pids = self.model.performer_ids() if msg.performer == -1 else [msg.performer]
                for pid in pids:
                    self._apply(pid, msg)
                self.applied += 1
            except Exception as exc:
                self.errors.append(f"{msg.kind}: {exc}")
                log.warning("control %s rejected: %s", msg.kind, exc)

    def reshaped(self, msgs: Sequence[ControlMessage]) -> list[int]:
        """The performers (in model order) whose generated motion these controls change: a genre, text or energy
        (on a model with the energy input) different from the current one, any keyframe or reset. Intensity (and
        energy on older models) is the playout's blend and needs no re-plan; unknown performers are skipped."""
        pids = self.model.performer_ids()
        hit: set[int] = set()
        for msg in msgs:
            for pid in pids if msg.performer == -1 else [msg.performer]:
                if pid in pids and pid not in hit and self._changes(pid, msg):
                    hit.add(pid)
        return [p for p in pids if p in hit]

    def _changes(self, pid: int, msg: ControlMessage) -> bool:
        c = self.model.controls(pid)
        try:
            if msg.kind == "genre":
                return genre_id(str(msg.value)) != c.genre
            if msg.kind == "text":
                new = None if msg.value is None or isinstance(msg.value, str) else np.asarray(msg.value, np.float32)
                if new is None or c.text is None:
                    return (new is None) != (c.text is None)
                return not np.array_equal(new, c.text)
            if msg.kind == "energy":
                return self.model.capabilities.energy and (c.energy is None or float(msg.value) != c.energy)
        except (TypeError, ValueError):  # rejected when applied
            return False
        return msg.kind in ("keyframe", "reset")

    def _apply(self, pid: int, msg: ControlMessage) -> None:
        c = self.model.controls(pid)
        if msg.kind == "genre":
            c.genre = genre_id(str(msg.value))
        elif msg.kind == "text":
            c.text = None if msg.value is None or isinstance(msg.value, str) else np.asarray(msg.value, np.float32)
        elif msg.kind == "energy" and self.model.capabilities.energy:
            c.energy = float(msg.value)  # conditions the model from its next step
        elif msg.kind in ("intensity", "energy"):  # energy on a model without it: the idle blend, as before
            c.intensity = float(msg.value)
            self.set_intensity(pid, float(msg.value))
        elif msg.kind == "reset":
            self.model.reset(pid)
        elif msg.kind == "keyframe":
            kf = dict(msg.value)
            root, quat = self.current_pose(pid)
            root = root.copy()
            if "rotations" in kf:
                rots = np.asarray(kf["rotations"], dtype=np.float32)
                if len(rots) != self.model.n_joints:
                    raise ValueError(
                        f"keyframe has {len(rots)} rotations; the skeleton has {self.model.n_joints} joints")
                quat = rots
            if "root" in kf:
                root[1] = float(kf["root"][1])
            self.model.set_keyframe(pid, int(kf["frames_ahead"]), root, quat, str(kf.get("joints", "all")))
