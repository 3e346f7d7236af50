"""The SpeechAnalyzer stage: AudioBlocks in; speech FeatureFrames (kind="speech", 30 fps) out."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engine.analysis.features import SpeechFrameFeatures
from engine.analysis.music import HopFramer
from engine.frames import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME, AudioBlock, FeatureFrame, Frame
from engine.pipeline import Stage


class SpeechAnalyzer(Stage):
    """Energy, pitch (aubio yin), voicing and 13 MFCC per 30 fps frame; see ``SPEECH_FEATURE_NAMES``.

    Frame ``i`` is emitted once sample ``(i + 1) * 735`` has arrived (``latency_samples = 0``: the
    analysis windows end at the frame's last sample). Tempo fields of the frames are zero.
    """

    latency_samples = 0

    def __init__(self, sample_rate: int = ENGINE_SAMPLE_RATE) -> None:
        if sample_rate != ENGINE_SAMPLE_RATE:
            raise ValueError(f"SpeechAnalyzer runs at {ENGINE_SAMPLE_RATE} Hz; resample the source (got {sample_rate})")
        self.sample_rate = sample_rate
        self.features = SpeechFrameFeatures(sample_rate)
        self.framer = HopFramer(SAMPLES_PER_FRAME, SAMPLES_PER_FRAME)
        self.frame_index = 0
        self.origin: int | None = None
        self._clean = np.zeros(4096, dtype=np.float32)

    def process(self, frame: Frame) -> Iterable[Frame]:
        if not isinstance(frame, AudioBlock):
            return (frame,)
        if frame.sample_rate != self.sample_rate:
            raise ValueError(
                f"SpeechAnalyzer got a {frame.sample_rate} Hz block; sources must resample to {self.sample_rate} Hz"
            )
        if self.origin is None:
            self.origin = frame.start_index
        out: list[Frame] = []
        x = frame.samples if frame.samples.ndim == 1 else frame.samples.reshape(len(frame.samples), -1).mean(axis=1)
        for start in range(0, len(x), len(self._clean)):
            chunk = x[start:start + len(self._clean)]
            buf = self._clean[: len(chunk)]
            np.copyto(buf, chunk, casting="unsafe")
            np.nan_to_num(buf, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            for kind, data in self.framer.feed(buf):
                if kind != "frame":
                    continue  # hop == frame here: each frame arrives once as "hop" and once as "frame"
                vec = self.features.process(data)
                out.append(
                    FeatureFrame(
                        self.origin + self.framer.total,
                        frame.capture_ns,
                        frame_index=self.frame_index,
                        features=vec.copy(),
                        bpm=0.0,
                        period_s=0.0,
                        next_beat_s=-1.0,
                        confidence=0.0,
                        kind="speech",
                    )
                )
                self.frame_index += 1
        return out
