"""A small dance-style classifier on 4 s windows of model vectors: a measure of style, trained on real motion.

Features per window (invariant to where the dancer stands and which way they face): mean and standard
deviation of every joint-local 6D rotation channel, the hip's tilt (the vertical components of its
rotation), root height and horizontal speed, foot-contact rates and per-joint rotation speed. A
multinomial logistic regression (L2, full-batch L-BFGS, fixed seed) on standardised features, trained
on the training takes and their mirror images; it is measured on held-out validation takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.frames import MODEL_FPS
from engine.models.pose_repr import CONTACT_SLICE, LOWER_JOINTS, mirror_vectors

#: Window and hop (frames at 30 fps).
WINDOW = 120
TRAIN_HOP = 30
EVAL_HOP = 60


def window_features(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """One window (upper [T, 72], lower [T, 61]) -> feature vector [272]."""
    nl = len(LOWER_JOINTS)
    local = np.concatenate([lower[:, 9 : 3 + 6 * nl], upper], axis=1).astype(np.float64)  # [T, 120]
    tilt = lower[:, [4, 7]].astype(np.float64)  # the hip's rotation: vertical parts of its x and y columns
    speed = np.hypot(lower[:, 0], lower[:, 2]).astype(np.float64)
    height = lower[:, 1].astype(np.float64)
    contacts = lower[:, CONTACT_SLICE].astype(np.float64)
    rot_speed = np.abs(np.diff(local, axis=0)).reshape(len(local) - 1, -1, 6).sum(-1).mean(0) * MODEL_FPS  # [20]
    return np.concatenate([
        local.mean(0), local.std(0), tilt.mean(0), tilt.std(0),
        [speed.mean(), speed.std(), height.mean(), height.std()], contacts.mean(0), rot_speed,
    ])


def windows(upper: np.ndarray, lower: np.ndarray, hop: int = EVAL_HOP, window: int = WINDOW) -> np.ndarray:
    """Features of every full window of a clip (a clip shorter than a window gives one, of its length)."""
    n = len(upper)
    if n < 8:
        return np.zeros((0, 272))
    starts = range(0, max(1, n - window + 1), hop) if n >= window else [0]
    return np.stack([window_features(upper[s : s + window], lower[s : s + window]) for s in starts])


@dataclass
class StyleClassifier:
    """Trained classifier: ``styles`` names the classes; weights act on standardised features."""

    styles: tuple[str, ...]
    mean: np.ndarray  # [F]
    std: np.ndarray  # [F]
    weight: np.ndarray  # [C, F]
    bias: np.ndarray  # [C]

    def predict_windows(self, feats: np.ndarray) -> np.ndarray:
        """Class index per window. feats: [N, F] -> [N]."""
        z = (feats - self.mean) / self.std
        return np.argmax(z @ self.weight.T + self.bias, axis=1)

    def accuracy(self, clips: list[tuple[np.ndarray, np.ndarray]], style: str) -> float:
        """Share of the windows of ``clips`` ((upper, lower) pairs) classified as ``style``."""
        feats = [windows(u, lo) for u, lo in clips]
        f = np.concatenate([x for x in feats if len(x)]) if any(len(x) for x in feats) else np.zeros((0, 272))
        if len(f) == 0:
            return float("nan")
        return float(np.mean(self.predict_windows(f) == self.styles.index(style)))

    def accuracy_windows(self, clips: list[tuple[np.ndarray, np.ndarray]], style: str, window: int) -> float:
        """:meth:`accuracy` for a classifier trained on ``window``-frame windows (hop of a quarter window)."""
        feats = [windows(u, lo, max(1, window // 4), window) for u, lo in clips]
        f = np.concatenate([x for x in feats if len(x)]) if any(len(x) for x in feats) else np.zeros((0, 272))
        if len(f) == 0:
            return float("nan")
        return float(np.mean(self.predict_windows(f) == self.styles.index(style)))


def train_style_classifier(
    clips: list[tuple[str, np.ndarray, np.ndarray]], l2: float = 1e-2, seed: int = 0, mirror: bool = True,
    window: int = WINDOW,
) -> StyleClassifier:
    """Fit on (style, upper, lower) clips; windows of ``window`` frames every TRAIN_HOP frames (every
    ``window // 4`` for shorter windows), mirror images added."""
    xs, ys = [], []
    styles = tuple(sorted({s for s, _, _ in clips}))
    for style, up, lo in clips:
        variants = [(up, lo)] + ([mirror_vectors(up, lo)] if mirror else [])
        for u, low in variants:
            f = windows(u, low, min(TRAIN_HOP, max(1, window // 4)), window)
            xs.append(f)
            ys.append(np.full(len(f), styles.index(style)))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    z = torch.from_numpy((x - mean) / std).float()
    t = torch.from_numpy(y).long()
    # Classes are unbalanced (salsa has ~6x the minutes): weight each class by the inverse of its count.
    counts = np.bincount(y, minlength=len(styles)).astype(np.float64)
    cw = torch.tensor(len(y) / (len(styles) * np.maximum(counts, 1)), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    w = (0.01 * torch.randn(len(styles), z.shape[1], generator=g)).requires_grad_()
    b = torch.zeros(len(styles), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w.T + b, t, weight=cw) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return StyleClassifier(styles=styles, mean=mean, std=std, weight=w.detach().numpy().astype(np.float64),
                           bias=b.detach().numpy().astype(np.float64))
