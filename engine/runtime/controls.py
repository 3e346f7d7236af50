"""Controls: validate control messages from any thread, apply them on the engine thread between steps.

Semantic checks (known performer, genre the model has, a model with text or keyframe input, a keyframe's
joint count) happen at :meth:`ControlDesk.submit`, so a WebSocket/OSC sender gets the reason at once as a
``ValueError``; the change itself is queued (bounded) and applied by :meth:`ControlDesk.apply` before the
next step. Text prompts are embedded on the :class:`~engine.runtime.text_embedder.TextEmbedder`'s thread
(never on the caller's or the engine's) and queued when ready; of the keyframes queued for a performer only
the newest is applied (each costs an encode on the engine thread). Checks use the model's
:class:`~engine.models.protocol.Capabilities`, never its kind.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

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

    def apply(self) -> None:
        """Apply the queued controls (engine thread); one bad control never stops the engine."""
        queued = []
        while self._queue:
            queued.append(self._queue.popleft())
        for msg in coalesce_keyframes(queued):  # a keyframe flood costs one encode per performer per step
            try:
                pids = self.model.performer_ids() if msg.performer == -1 else [msg.performer]
                for pid in pids:
                    self._apply(pid, msg)
                self.applied += 1
            except Exception as exc:
                self.errors.append(f"{msg.kind}: {exc}")
                log.warning("control %s rejected: %s", msg.kind, exc)

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
