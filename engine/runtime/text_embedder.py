"""Control helpers that keep expensive work off the event loop and the engine step.

* :class:`TextEmbedder`: sentence embeddings for text controls on ONE worker thread with a small LRU
  cache; the result is handed over by a callback when ready (the control applies before the next step
  after that). The first prompt loads the text model (seconds); nothing waits for it but the prompt.
* :func:`coalesce_keyframes`: of the keyframes queued for one performer, only the newest is applied
  (each costs a VQ-VAE encode on the engine thread; a flood must cost one encode per step, not thousands).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

import numpy as np

from engine.frames import ControlMessage

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]


def _default_embed(texts: list[str]) -> np.ndarray:
    from engine.models.conditioning import embed_texts

    return embed_texts(texts)


class TextEmbedder:
    """Embeds prompts on one daemon thread (started on first use), newest requests first served in order.

    Args:
        embed: ``list[str] -> [N, D]`` embeddings (default: the bundled sentence model).
        cache_size: prompts whose embeddings are kept (an LRU); a cached prompt is answered at once.
        max_pending: prompts waiting at most; beyond that :meth:`request` refuses with a reason.
    """

    def __init__(self, embed: Embed | None = None, cache_size: int = 64, max_pending: int = 8) -> None:
        self.embed = embed or _default_embed
        self.cache_size = cache_size
        self.max_pending = max_pending
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: deque[tuple[str, Callable[[np.ndarray], None]]] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.embedded = 0
        self.failures: list[str] = []

    def request(self, text: str, on_ready: Callable[[np.ndarray], None]) -> None:
        """Embed ``text`` and call ``on_ready(embedding)`` (at once if cached, else from the worker thread).

        Raises:
            ValueError: too many prompts already waiting (the reason says so).
        """
        with self._cv:
            emb = self._cache.get(text)
            if emb is not None:
                self._cache.move_to_end(text)
            else:
                if len(self._pending) >= self.max_pending:
                    raise ValueError(f"text control busy: {len(self._pending)} prompts are being embedded; "
                                     "try again shortly")
                self._pending.append((text, on_ready))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="groovecast-text-embed", daemon=True)
                    self._thread.start()
                self._cv.notify()
                return
        on_ready(emb)

    def pending(self) -> int:
        with self._cv:
            return len(self._pending)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                text, on_ready = self._pending[0]
            try:
                emb = np.asarray(self.embed([text])[0], dtype=np.float32)
            except Exception as exc:  # a broken text model must not end the thread: report, drop the prompt
                self.failures.append(f"{text[:40]!r}: {exc}")
                log.warning("text control: cannot embed %r: %s", text[:40], exc)
                with self._cv:
                    self._pending.popleft()
                continue
            with self._cv:
                self._pending.popleft()
                self._cache[text] = emb
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                self.embedded += 1
            try:
                on_ready(emb)
            except Exception as exc:
                log.warning("text control: handing over the embedding failed: %s", exc)


def coalesce_keyframes(msgs: Iterable[ControlMessage]) -> list[ControlMessage]:
    """Drop every keyframe that a later keyframe for the same performer (or for all, -1) supersedes."""
    out = list(msgs)
    newest: dict[int, int] = {}  # performer -> index of its newest keyframe
    all_after = -1  # index of the newest keyframe for every performer
    for i, m in enumerate(out):
        if m.kind == "keyframe":
            if m.performer == -1:
                all_after = i
            newest[m.performer] = i
    return [m for i, m in enumerate(out)
            if m.kind != "keyframe" or (i == newest[m.performer] and (m.performer == -1 or i > all_after))]
