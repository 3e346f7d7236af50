"""Training loop of the cross-conditional GPT on VQ-VAE tokens with per-token music conditioning."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.frames import MODEL_FPS
from engine.models.conditioning import (
    COND_DIM,
    ENERGY_DIMS,
    GENRES,
    TEXT_DIM,
    embed_texts,
    has_energy,
    rhythm_mask,
    sequence_conditions,
    with_grid_phase,
)
from engine.models.gpt import GPT_PRESETS, CrossCondGPT, GPTConfig, Keyframes, load_gpt, save_gpt
from engine.models.text_prompts import MATCHED, PHRASES
from engine.models.vqvae import DOWN, VQVAE
from engine.train import captions as C
from engine.train.beat_loss import BeatSpeedLoss
from engine.train.common import (
    file_logger,
    load_training_state,
    restore_rng,
    rng_state,
    save_training_state,
    seed_everything,
    set_threads,
    trainable_parameters,
    warmup_cosine_lr,
)
from engine.train.dataset import Sequence
from engine.train.sources import balanced_weights, style_of

#: Caption and energy labels are computed for windows starting every CHUNK_TOKENS tokens; a training window
#: takes those of the chunk nearest its start.
CHUNK_TOKENS = 8


@dataclass
class GPTTrainConfig:
    """Optimisation settings of the GPT."""

    steps: int = 2000
    batch: int = 16
    lr: float = 4e-4
    lr_final: float = 4e-5
    warmup: int = 100
    seed: int = 0
    threads: int = 2
    genre_dropout: float = 0.2  # share of windows trained with genre "none"
    text_dropout: float = 0.5  # share of windows trained without text
    #: Share of windows trained without the energy input (models whose text_dim has the energy entries).
    energy_dropout: float = 0.3
    #: Share of windows trained with one keyframe: the real tokens of a later position of the window in a
    #: keyframe slot (so the GPT learns to head for a pinned pose).
    keyframe_prob: float = 0.3
    #: Share of input tokens replaced by random ids: the model must lean on the music, not only replay its
    #: own history (tiny data memorises fast), and it learns to recover from its own sampling mistakes.
    token_noise: float = 0.1
    #: "rhythm": train on the rhythm/energy channels only and zero the model's weights for the others
    #: (see engine.models.conditioning.rhythm_mask); "all": every conditioning channel.
    cond_channels: str = "rhythm"
    log_every: int = 50
    ckpt_every: int = 500
    val_every: int = 500
    #: Early stopping: keep the weights of the validation with the lowest loss (saved under ``best/`` and
    #: copied over the final weights at the end). Three styles from ~80 takes overfit within ~1000 steps
    #: (train accuracy 0.65, validation loss rising from step 1000), and the overfit GPT collapses onto a
    #: repeated token.
    keep_best: bool = False
    #: Weight of the auxiliary beat loss (engine.train.beat_loss: decoded joint speed should dip at the
    #: predicted beats); 0 = cross-entropy only. Needs the VQ-VAE (``train_gpt(..., vq=...)``).
    beat_loss: float = 0.0
    #: Frames either side of a beat whose mean speed the beat's speed is compared to.
    beat_loss_radius: int = 7
    #: "offset" (distance from the beat to the soft speed minimum around it) or "contrast" (speed at the beat
    #: over the neighbourhood's mean); see engine.train.beat_loss.
    beat_loss_kind: str = "offset"
    #: Gumbel-softmax temperature of the beat loss's straight-through samples.
    beat_loss_tau: float = 1.0
    #: Share of windows whose predicted-phase input is the true phase of the music's beat grid (what a perfect
    #: tracker predicts) instead of the live tracker's prediction: the GPT learns what "phase 0" means from
    #: beats that really are there, not from one tracker's errors (issue 10 item 7).
    true_phase: float = 0.0
    #: Fine-tuning: a trained GPT's folder (``gpt.safetensors`` + ``gpt.json``) whose weights the new model
    #: starts from, with a fresh optimizer and this config's schedule (see :func:`init_from_gpt`); "" = random.
    init_from: str = ""
    #: Train only the parameters whose names start with these prefixes (e.g. ``["text_proj"]``: a fine-tune
    #: that teaches the text and energy inputs and leaves the rest of ``init_from``'s GPT exactly as it was, so
    #: its dances without those controls are unchanged); empty: train everything.
    train_only: tuple[str, ...] = ()
    #: Share of batch windows drawn *by attribute class* (an attribute of ``text_prompts.MATCHED`` and one of its
    #: classes uniformly, then a training window of that class) and captioned with that class's phrase alone
    #: ("spinning": the canonical short phrase half of the time, else another of its phrasings), never dropped.
    #: The run-time prompt matcher turns any sentence into such phrases, so the text input learns each one
    #: against the windows it names, balanced over the attributes' extremes (the rest of the batch as before).
    attr_share: float = 0.0
    #: Keep the energy columns of ``text_proj`` (and ``text_layer_proj``) as initialised (restored after every
    #: step, weight decay included): a text-only fine-tune that leaves the energy control exactly as it was.
    freeze_energy: bool = False


@dataclass
class TokenSequence:
    """A sequence in token space: what the GPT trains on."""

    name: str
    up: np.ndarray  # [N] int64
    down: np.ndarray  # [N] int64
    cond: np.ndarray  # [N, COND_DIM] float32
    genre: int
    text: np.ndarray  # [TEXT_DIM] float32 (zeros = no text)
    caption: str
    #: Per chunk of CHUNK_TOKENS tokens (a window starting there): two caption embeddings [C, 2, TEXT_DIM], the
    #: captions, and the energy label (speed percentile within the style, 0..1). None: use ``text`` only.
    chunk_text: np.ndarray | None = None
    chunk_captions: tuple[str, ...] = ()
    chunk_energy: np.ndarray | None = None
    #: ``cond`` with the phase entries of the true beat grid (conditioning.with_grid_phase); None: not known.
    cond_grid: np.ndarray | None = None
    #: Per chunk: the window's attribute classes (``captions.classes``, e.g. {"speed": "low", "turn": "high"}).
    chunk_classes: tuple[dict[str, str], ...] = ()
    #: Embeddings of every phrasing of the matched attribute classes (``text_prompts.PHRASES``), for
    #: ``attr_share``: {(attribute, class): [P, TEXT_DIM]}, the canonical phrase first. Empty: not embedded.
    phrase_text: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)


def motion_energy(seq: Sequence) -> float:
    """Mean absolute frame-to-frame change of the rotation channels (a cheap energy proxy)."""
    return float(np.abs(np.diff(seq.upper, axis=0)).mean() + np.abs(np.diff(seq.lower[:, 3:-4], axis=0)).mean())


def _measures(seq: Sequence) -> C.FrameMeasures:
    from engine.train.evaluate import points

    return C.frame_measures(points(seq.upper, seq.lower), seq.lower, MODEL_FPS)


def _chunk_windows(n_tokens: int, context: int) -> list[tuple[int, int]]:
    """Frame ranges of the windows starting at every chunk of a sequence of ``n_tokens`` tokens."""
    return [(c * DOWN, min(n_tokens, c + context) * DOWN) for c in range(0, max(1, n_tokens), CHUNK_TOKENS)]


def caption_thresholds(seqs: list[Sequence], context: int) -> C.Thresholds:
    """Attribute terciles and per-style energy references over the training windows of ``seqs``."""
    attrs, styles = [], []
    for s in seqs:
        m = _measures(s)
        for a, b in _chunk_windows(s.n_frames // DOWN, context):
            attrs.append(C.window_attributes(m, a, b))
            styles.append(style_of(s.name))
    return C.attribute_thresholds(np.array(attrs), styles)


def _window_bpm(seq: Sequence, a: int, b: int) -> float:
    beats = seq.music.beats_s
    inside = beats[(beats >= a / MODEL_FPS) & (beats < b / MODEL_FPS)]
    use = inside if len(inside) >= 3 else beats
    if len(use) < 2:
        return 110.0
    return float(60.0 / np.median(np.diff(use)))


def embed_cached(texts: list[str], cache: Path | None) -> dict[str, np.ndarray]:
    """Sentence embeddings of ``texts``, reusing those stored in ``cache`` (an .npz of plain arrays: ``texts``,
    ``emb``) and adding the new ones to it. Embedding some 14,000 captions takes minutes on a CPU; the same
    captions come back on every run with the same data and seed."""
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if z["emb"].ndim == 2 and z["emb"].shape[1] == TEXT_DIM:
            known = dict(zip((str(t) for t in z["texts"]), z["emb"], strict=True))
    missing = [t for t in texts if t not in known]
    if missing:
        known.update(zip(missing, embed_texts(missing), strict=True))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            keys = sorted(known)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, texts=np.array(keys), emb=np.stack([known[k] for k in keys]).astype(np.float32))
            tmp.replace(cache)
    return {t: known[t] for t in texts}


@torch.no_grad()
def tokenize(vq: VQVAE, seqs: list[Sequence], texts: bool = True, thresholds: C.Thresholds | None = None,
             context: int = 60, seed: int = 0, embed_cache: Path | None = None) -> list[TokenSequence]:
    """Encode sequences to tokens, with their per-token conditioning and per-chunk captions and energy.

    Captions come from the measured attributes of each chunk's window (:mod:`engine.train.captions`), two
    phrasings per chunk, embedded by the bundled sentence model (each distinct caption once).
    ``thresholds`` (terciles and energy references) default to those of ``seqs``; pass the training set's
    when tokenizing validation data. ``embed_cache`` (an .npz file) keeps caption embeddings between runs.
    """
    vq.eval()
    th = thresholds or caption_thresholds(seqs, context)
    rng = np.random.default_rng(seed)
    per_seq: list[tuple[list[str], np.ndarray]] = []
    seq_classes: list[tuple[dict[str, str], ...]] = []
    for s in seqs:
        m = _measures(s)
        style = style_of(s.name)
        seq_caps: list[str] = []
        seq_energy: list[float] = []
        seq_cls: list[dict[str, str]] = []
        for a, b in _chunk_windows(s.n_frames // DOWN, context):
            at = C.window_attributes(m, a, b)
            cls = C.classes(at, style, th)
            seq_cls.append(cls)
            tempo = C.tempo_class(_window_bpm(s, a, b))
            seq_caps += [C.caption(cls, style, tempo, C.role_of(s.name), rng) for _ in range(2)]
            seq_energy.append(C.energy_percentile(float(at[0]), style, th))
        per_seq.append((seq_caps, np.asarray(seq_energy, np.float32)))
        seq_classes.append(tuple(seq_cls))
    emb: dict[str, np.ndarray] = {}
    phrase_text: dict[tuple[str, str], np.ndarray] = {}
    if texts:
        bank = [(a, c) for a in MATCHED for c in PHRASES[a]]
        uniq = sorted({c for caps, _ in per_seq for c in caps} | {p for a, c in bank for p in PHRASES[a][c]})
        emb = embed_cached(uniq, embed_cache)
        phrase_text = {(a, c): np.stack([emb[p] for p in PHRASES[a][c]]) for a, c in bank}
    out = []
    for s, (caps, energy), cls_s in zip(seqs, per_seq, seq_classes, strict=True):
        t = (s.n_frames // DOWN) * DOWN
        iu, idn = vq.encode(torch.from_numpy(s.upper[:t])[None], torch.from_numpy(s.lower[:t])[None])
        n = t // DOWN
        mu = s.music
        cond = sequence_conditions(mu.features, mu.period_s, mu.next_beat_s, n)
        grid = with_grid_phase(cond, mu.beats_s) if len(mu.beats_s) >= 2 else None
        chunk_text = np.stack([emb[c] for c in caps]).reshape(len(energy), 2, TEXT_DIM) if texts else None
        out.append(
            TokenSequence(
                name=s.name, up=iu[0].numpy(), down=idn[0].numpy(), cond=cond, genre=s.genre or GENRES.index("salsa"),
                text=np.zeros(TEXT_DIM, np.float32), caption=caps[0], chunk_text=chunk_text,
                chunk_captions=tuple(caps), chunk_energy=energy, cond_grid=grid, chunk_classes=cls_s,
                phrase_text=phrase_text,
            )
        )
    return out


def _window_controls(d: TokenSequence, s: int, cfg: GPTTrainConfig, width: int,
                     rng: np.random.Generator, phrase: tuple[str, str] | None = None) -> np.ndarray:
    """The global control vector [width] of a window starting at token ``s``: caption text (dropped for
    ``text_dropout`` of windows; ``phrase`` = (attribute, class): that class's phrase alone, never dropped) and,
    for models with the energy entries, the energy label (dropped for ``energy_dropout``)."""
    out = np.zeros(width, np.float32)
    c = min(round(s / CHUNK_TOKENS), len(d.chunk_energy) - 1) if d.chunk_energy is not None else 0
    if phrase is not None:
        bank = d.phrase_text[phrase]
        txt = bank[0] if rng.random() < 0.5 else bank[int(rng.integers(len(bank)))]
        k = min(TEXT_DIM, width, len(txt))
        out[:k] = txt[:k]
    elif rng.random() >= cfg.text_dropout:
        txt = d.chunk_text[c, int(rng.integers(d.chunk_text.shape[1]))] if d.chunk_text is not None else d.text
        k = min(TEXT_DIM, width, len(txt))
        out[:k] = txt[:k]
    if has_energy(width) and d.chunk_energy is not None and rng.random() >= cfg.energy_dropout:
        out[TEXT_DIM : TEXT_DIM + ENERGY_DIMS] = (2.0 * (float(d.chunk_energy[c]) - 0.5), 1.0)
    return out


def class_windows(data: list[TokenSequence]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """{(attribute, class): [(sequence index, chunk index)]} of the windows whose caption names that class, for
    the matched attributes whose phrases are embedded (``attr_share``); classes without a window are left out."""
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for i, d in enumerate(data):
        for c, cls in enumerate(d.chunk_classes):
            for a, v in cls.items():
                if (a, v) in d.phrase_text:
                    out.setdefault((a, v), []).append((i, c))
    return out


def sample_batch(
    data: list[TokenSequence], cfg: GPTTrainConfig, gcfg: GPTConfig, rng: np.random.Generator,
    by_class: dict[tuple[str, str], list[tuple[int, int]]] | None = None,
) -> dict[str, torch.Tensor]:
    """Random windows of ``context`` tokens. Inputs are the previous tokens (BOS only at a sequence start).
    With ``cfg.attr_share`` > 0 that share of the windows is drawn by attribute class (``by_class``, default
    :func:`class_windows` of ``data``) and captioned with the class's phrase."""
    length = gcfg.context
    lens = np.array([len(d.up) for d in data], dtype=np.float64)
    p = np.asarray(balanced_weights([d.name for d in data], lens))
    bos = gcfg.bos_id
    if cfg.attr_share > 0 and by_class is None:
        by_class = class_windows(data)
    keys = sorted(by_class) if by_class else []
    ups_in, downs_in, ups, downs, conds, genres, texts, pos0 = [], [], [], [], [], [], [], []
    kf_up, kf_down, kf_pos, kf_mask = [], [], [], []
    for i in rng.choice(len(data), size=cfg.batch, p=p):
        phrase, di, chunk = None, int(i), 0
        if keys and by_class and rng.random() < cfg.attr_share:
            phrase = keys[int(rng.integers(len(keys)))]
            di, chunk = by_class[phrase][int(rng.integers(len(by_class[phrase])))]
        d = data[di]
        n = len(d.up)
        w = min(length, n)
        s = int(rng.integers(0, n - w + 1)) if phrase is None else min(chunk * CHUNK_TOKENS, n - w)
        up_prev = np.concatenate([[bos], d.up])  # up_prev[k] = token before position k
        down_prev = np.concatenate([[bos], d.down])
        pad = length - w  # sequences shorter than the window are right-padded with ignored targets
        ups_in.append(np.pad(up_prev[s : s + w], (0, pad), constant_values=bos))
        downs_in.append(np.pad(down_prev[s : s + w], (0, pad), constant_values=bos))
        ups.append(np.pad(d.up[s : s + w], (0, pad), constant_values=-100))
        downs.append(np.pad(d.down[s : s + w], (0, pad), constant_values=-100))
        use_grid = cfg.true_phase > 0 and d.cond_grid is not None and rng.random() < cfg.true_phase
        src = d.cond_grid if use_grid and d.cond_grid is not None else d.cond
        conds.append(np.pad(src[s : s + w], ((0, pad), (0, 0))))
        genres.append(0 if rng.random() < cfg.genre_dropout else d.genre)
        texts.append(_window_controls(d, s, cfg, gcfg.text_dim, rng, phrase))
        pos0.append(s)
        # A keyframe: the real tokens of a position in the second part of the window (at least 4 tokens in).
        lo_kf = min(w - 1, max(4, w // 3))
        use_kf = gcfg.n_keyframe_slots > 0 and rng.random() < cfg.keyframe_prob
        j = s + int(rng.integers(lo_kf, w)) if use_kf else s
        kf_up.append(d.up[j])
        kf_down.append(d.down[j])
        kf_pos.append(j)
        kf_mask.append(use_kf)
    cond_arr = np.stack(conds)
    if cfg.cond_channels == "rhythm":
        cond_arr = cond_arr * rhythm_mask()[None, None, :]
    up_in = np.stack(ups_in)
    down_in = np.stack(downs_in)
    if cfg.token_noise > 0:
        for arr in (up_in, down_in):
            hit = (rng.random(arr.shape) < cfg.token_noise) & (arr != bos)
            arr[hit] = rng.integers(0, gcfg.vocab_size, int(hit.sum()))
    return {
        "up_in": torch.from_numpy(up_in).long(),
        "down_in": torch.from_numpy(down_in).long(),
        "up": torch.from_numpy(np.stack(ups)).long(),
        "down": torch.from_numpy(np.stack(downs)).long(),
        "cond": torch.from_numpy(cond_arr).float(),
        "genre": torch.tensor(genres, dtype=torch.long),
        "text": torch.from_numpy(np.stack(texts)).float(),
        "pos0": torch.tensor(pos0, dtype=torch.long),
        "kf_up": torch.tensor(np.asarray(kf_up)[:, None], dtype=torch.long),
        "kf_down": torch.tensor(np.asarray(kf_down)[:, None], dtype=torch.long),
        "kf_pos": torch.tensor(np.asarray(kf_pos)[:, None], dtype=torch.long),
        "kf_mask": torch.tensor(np.asarray(kf_mask)[:, None], dtype=torch.bool),
    }


def batch_loss(model: CrossCondGPT, b: dict[str, torch.Tensor], beat: BeatSpeedLoss | None = None,
               beat_weight: float = 0.0, parts: dict | None = None) -> tuple[torch.Tensor, float, float]:
    """Cross-entropy of both token streams (+ ``beat_weight`` x the beat loss when ``beat`` is given); the
    loss and the upper/lower token accuracies. ``parts`` (if given) receives the separate loss terms."""
    kf = None
    if "kf_mask" in b and bool(b["kf_mask"].any()):
        kf = Keyframes(b["kf_up"], b["kf_down"], b["kf_pos"], b["kf_mask"])
    lu, ld = model(b["up_in"], b["down_in"], b["cond"], b["genre"], b["text"], keyframes=kf, pos0=b["pos0"])
    v = lu.shape[-1]
    loss_u = F.cross_entropy(lu.reshape(-1, v), b["up"].reshape(-1), ignore_index=-100)
    loss_d = F.cross_entropy(ld.reshape(-1, v), b["down"].reshape(-1), ignore_index=-100)
    ok = b["up"] >= 0
    acc_u = float((lu.argmax(-1) == b["up"])[ok].float().mean())
    acc_d = float((ld.argmax(-1) == b["down"])[ok].float().mean())
    loss = loss_u + loss_d
    if parts is not None:
        parts["ce"] = float(loss.detach())
    if beat is not None and beat_weight > 0:
        aux = beat(lu, ld, b["cond"], b["up"])
        if parts is not None:
            parts["beat"] = float(aux.detach())
        loss = loss + beat_weight * aux
    return loss, acc_u, acc_d


@torch.no_grad()
def validation_loss(model: CrossCondGPT, data: list[TokenSequence], cfg: GPTTrainConfig, gcfg: GPTConfig,
                    beat: BeatSpeedLoss | None = None) -> dict:
    """Validation cross-entropy and token accuracy (and the beat loss's speed contrast when ``beat`` is given)
    on fixed clean windows."""
    model.eval()
    rng = np.random.default_rng(1234)
    losses, accs, beats = [], [], []
    for _ in range(4):
        # validation sees what the live engine feeds: the tracker's phase, no text, energy or keyframe
        clean = GPTTrainConfig(**{**asdict(cfg), "text_dropout": 1.0, "genre_dropout": 0.0, "token_noise": 0.0,
                                  "energy_dropout": 1.0, "keyframe_prob": 0.0, "true_phase": 0.0,
                                  "attr_share": 0.0})
        b = sample_batch(data, clean, gcfg, rng)
        parts: dict = {}
        _, au, ad = batch_loss(model, b, beat, 1.0, parts)
        losses.append(parts["ce"])
        accs.append((au + ad) / 2)
        if "beat" in parts:
            beats.append(parts["beat"])
    model.train()
    out = {"val_loss": float(np.mean(losses)), "val_acc": float(np.mean(accs))}
    if beats:
        out["val_beat"] = float(np.mean(beats))
    return out


def apply_cond_mask(model: CrossCondGPT, cfg: GPTTrainConfig) -> None:
    """Zero the conditioning weights of channels the model was trained without, so it ignores them exactly."""
    if cfg.cond_channels == "rhythm":
        with torch.no_grad():
            model.cond_proj.weight[:, torch.from_numpy(~rhythm_mask())] = 0.0
    elif cfg.cond_channels != "all":
        raise ValueError(f"cond_channels must be 'rhythm' or 'all', got {cfg.cond_channels!r}")


def init_from_gpt(model: CrossCondGPT, source: Path) -> dict:
    """Copy a trained GPT's weights (the folder ``source``) into ``model``, which must have the same shape,
    except that a model with the energy entries (``text_dim = TEXT_DIM + ENERGY_DIMS``) may start from one
    without them: the sentence columns of ``text_proj`` are copied and the energy columns zeroed, so the new
    model computes exactly what the source does until training moves them. Dropout may differ. Any other
    mismatch is a one-line ValueError; returns what was done (for the training report)."""
    src_dir = Path(source)
    try:
        src = load_gpt(src_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"init_from: {str(exc).splitlines()[0]}") from None
    old, new = asdict(src.cfg), asdict(model.cfg)
    widen = old["text_dim"] == TEXT_DIM and has_energy(new["text_dim"])
    layers = not old["text_layers"] and new["text_layers"]
    diff = [f"{k} {old[k]} -> {new[k]}" for k in new
            if k != "dropout" and old[k] != new[k] and not (k == "text_dim" and widen)
            and not (k == "text_layers" and layers)]
    if diff:
        raise ValueError(f"init_from {src_dir}: the GPT's shape differs ({', '.join(diff)}); only text_dim "
                         f"{TEXT_DIM} -> {TEXT_DIM + ENERGY_DIMS} (adding the energy input) can be widened and "
                         f"text_layers switched on")
    state = src.state_dict()
    if widen:
        w = state["text_proj.weight"]
        state["text_proj.weight"] = torch.cat([w, torch.zeros(w.shape[0], ENERGY_DIMS, dtype=w.dtype)], dim=1)
    if layers and model.text_layer_proj is not None:  # the per-block text path starts at zero: nothing changes
        state["text_layer_proj.weight"] = torch.zeros_like(model.text_layer_proj.weight)
    model.load_state_dict(state)
    return {"from": str(src_dir), "widened_text_dim": [old["text_dim"], new["text_dim"]] if widen else None,
            "text_layers_added": bool(layers)}


def make_optimizer(model: CrossCondGPT, cfg: GPTTrainConfig) -> torch.optim.AdamW:
    """AdamW over the parameters ``cfg.train_only`` selects (all when empty); the others are frozen. A prefix
    that names no parameter is a ValueError listing the model's top-level modules."""
    params = trainable_parameters(model, cfg.train_only, "GPT")
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))


def train_gpt(
    train: list[TokenSequence],
    val: list[TokenSequence],
    out_dir: Path,
    cfg: GPTTrainConfig | None = None,
    model_cfg: GPTConfig | None = None,
    resume: bool = True,
    progress: bool = True,
    vq: VQVAE | None = None,
    extra: list[TokenSequence] | None = None,
    extra_share: float = 0.0,
) -> dict:
    """Train (or resume) the GPT into ``out_dir`` (gpt.safetensors + gpt.json); returns the report.

    ``vq`` (the VQ-VAE of the tokens) is needed when ``cfg.beat_loss > 0``. ``extra`` sequences (e.g. guided
    dances, engine.train.beat_distill) make up each batch with probability ``extra_share``."""
    cfg = cfg or GPTTrainConfig()
    model_cfg = model_cfg or GPT_PRESETS["default"]
    if cfg.cond_channels not in ("rhythm", "all"):
        raise ValueError(f"cond_channels must be 'rhythm' or 'all', got {cfg.cond_channels!r}")
    if model_cfg.cond_dim != COND_DIM and train and train[0].cond.shape[1] != model_cfg.cond_dim:
        raise ValueError(f"GPT cond_dim {model_cfg.cond_dim} does not match the data's {train[0].cond.shape[1]}")
    beat = None
    if cfg.beat_loss > 0:
        if vq is None:
            raise ValueError("beat_loss > 0 needs the VQ-VAE of the tokens (train_gpt(..., vq=...))")
        beat = BeatSpeedLoss(vq, radius=cfg.beat_loss_radius, tau=cfg.beat_loss_tau, kind=cfg.beat_loss_kind)
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = file_logger("groovecast.train.gpt", out_dir / "train_gpt.log")
    rng = np.random.default_rng(cfg.seed)
    model = CrossCondGPT(model_cfg)
    opt = make_optimizer(model, cfg)
    state_path = out_dir / "gpt_train_state.pt"
    report_path = out_dir / "gpt_train_report.json"
    start, elapsed_before = 0, 0.0
    if resume and state_path.is_file() and (out_dir / "gpt.safetensors").is_file():
        model = load_gpt(out_dir)
        model.train()
        opt = make_optimizer(model, cfg)
        st = load_training_state(state_path)
        opt.load_state_dict(st["optimizer"])
        restore_rng(rng, st["rng"])
        start = int(st["step"])
        if report_path.is_file():
            elapsed_before = float(json.loads(report_path.read_text()).get("train_seconds", 0.0))
        log.info("resumed at step %d", start)
    init = None
    if cfg.init_from and start == 0:
        init = init_from_gpt(model, Path(cfg.init_from))
        model.train()
        opt = make_optimizer(model, cfg)
        if val:  # the starting point: equals the source's validation (same clean windows, no text or energy)
            init["val_at_start"] = validation_loss(model, val, cfg, model_cfg, beat)
        log.info("initialised from %s", json.dumps(init))

    def lr_at(s: int) -> float:
        return warmup_cosine_lr(s, cfg.lr, cfg.lr_final, cfg.warmup, cfg.steps)

    history: list[dict] = []
    val_hist: list[dict] = []
    by_class = class_windows(train) if cfg.attr_share > 0 else None
    if cfg.attr_share > 0 and not by_class:
        raise ValueError("attr_share > 0 needs captioned training data (tokenize(..., texts=True))")
    energy_cols = None
    if cfg.freeze_energy:
        if not has_energy(model_cfg.text_dim):
            raise ValueError(f"freeze_energy: the GPT has no energy input (text_dim {model_cfg.text_dim})")
        energy_cols = [(m.weight, m.weight.detach()[:, TEXT_DIM:].clone())
                       for m in (model.text_proj, model.text_layer_proj) if m is not None]
    t0 = time.perf_counter()
    model.train()

    def write_report(done: int, final: bool) -> dict:
        secs = elapsed_before + time.perf_counter() - t0
        rep = {
            "step": done, "steps": cfg.steps, "train_seconds": secs, "threads": cfg.threads, "final": final,
            "train_tokens": int(sum(len(d.up) for d in train)), "history": history, "val_history": val_hist,
            "train_config": asdict(cfg),
        }
        if cfg.init_from:
            rep["init_from"] = init if init is not None else {"from": cfg.init_from, "resumed": True}
        report_path.write_text(json.dumps(rep, indent=2))
        return rep

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="gpt", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = float(lr_at(step))
        use_extra = bool(extra) and extra_share > 0 and rng.random() < extra_share
        b = sample_batch(extra if use_extra and extra else train, cfg, model_cfg, rng,
                         None if use_extra else by_class)
        parts: dict = {}
        loss, au, ad = batch_loss(model, b, beat, cfg.beat_loss, parts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if energy_cols is not None:
            with torch.no_grad():
                for w, cols in energy_cols:
                    w[:, TEXT_DIM:] = cols
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            rec = {"step": done, "loss": float(loss.detach()), "acc_up": au, "acc_down": ad, **parts}
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            log.info("step %d %s", done, json.dumps(rec))
        if (done % cfg.val_every == 0 or done == cfg.steps) and val:
            v = validation_loss(model, val, cfg, model_cfg, beat)
            v["step"] = done
            val_hist.append(v)
            log.info("val %s", json.dumps(v))
            if cfg.keep_best and v["val_loss"] < min([np.inf] + [h["val_loss"] for h in val_hist[:-1]]):
                apply_cond_mask(model, cfg)
                save_gpt(model, out_dir / "best")
                (out_dir / "best" / "step.json").write_text(json.dumps(v))
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            apply_cond_mask(model, cfg)
            save_gpt(model, out_dir)
            save_training_state(state_path, done, opt, rng_state(rng))
            write_report(done, final=done == cfg.steps)
    rep = write_report(cfg.steps, final=True)
    best = out_dir / "best" / "step.json"
    if cfg.keep_best and best.is_file():
        for n in ("gpt.json", "gpt.safetensors"):
            shutil.copy2(out_dir / "best" / n, out_dir / n)
        rep["best"] = json.loads(best.read_text())
        report_path.write_text(json.dumps(rep, indent=2))
        log.info("kept the best validation weights: %s", json.dumps(rep["best"]))
    log.info("done in %.0f s", rep["train_seconds"])
    return rep
