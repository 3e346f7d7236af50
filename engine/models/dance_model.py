"""A trained dance model folder: VQ-VAE + GPT weights and the model card (``model.json``) that names its kind."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.models.beat_guidance import GuidanceConfig
from engine.models.conditioning import COND_DIM, genre_id
from engine.models.gpt import CrossCondGPT, load_gpt
from engine.models.switch_primer import PRIMER_BANK_FILE, PrimerBank
from engine.models.vqvae import VQVAE, load_vqvae

#: The model shipped with the package.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "models" / "default"
MODEL_CARD = "model.json"
#: Motion-model kind of a VQ-VAE + cross-conditional GPT folder (``model_kind`` in the model card).
GPT_KIND = "vqvae-gpt"


@dataclass
class DanceModel:
    """A loaded VQ-VAE + GPT pair and the settings of its model card."""

    vq: VQVAE
    gpt: CrossCondGPT
    card: dict = field(default_factory=dict)
    primer_bank: PrimerBank | None = None  # the genre switch's bank of real dance (card ``genre_switch.primer``)

    @property
    def kind(self) -> str:
        """The motion-model kind of the card (``model_kind``; cards without it are VQ-VAE + GPT)."""
        return str(self.card.get("model_kind", GPT_KIND))

    @property
    def temperature(self) -> float:
        return float(self.card.get("sampling", {}).get("temperature", 1.0))

    @property
    def foot_lock(self) -> bool:
        return bool(self.card.get("sampling", {}).get("foot_lock", True))

    @property
    def beat_guidance(self) -> GuidanceConfig:
        """Beat-guided sampling settings of the model card (absent: off, plain sampling)."""
        return GuidanceConfig.from_card(self.card.get("sampling", {}).get("beat_guidance"))

    @property
    def couple_beat_guidance(self) -> GuidanceConfig:
        """Beat-guided sampling of a couple's leader: ``sampling.beat_guidance`` with the keys of
        ``couple.beat_guidance`` in place of its own (absent or null: the solo's settings). Session 8: the body-dip
        decoder with the solo's 16 candidates at weight 10 drove the partners apart (bench/reports/couple.md)."""
        over = (self.card.get("couple") or {}).get("beat_guidance")
        base = self.card.get("sampling", {}).get("beat_guidance")
        if not over:
            return GuidanceConfig.from_card(base)
        return GuidanceConfig.from_card({**(base or {}), **over})

    @property
    def couple_follower_steer(self) -> tuple[GuidanceConfig, float]:
        """How a couple's follower steers its own tokens towards its place (``couple.follower_guidance``): the
        follower generator's guided sampling (:class:`GuidanceConfig` keys; its stage term steers the follower's
        draws towards where the placement head puts her) and ``radius_m``, the gap from her place at which the
        term acts fully (from ``stage_from`` of it on). Absent or null: off (plain sampling, radius 0)."""
        block = dict((self.card.get("couple") or {}).get("follower_guidance") or {})
        radius = float(block.pop("radius_m", 0.0))
        return GuidanceConfig.from_card(block), radius

    @property
    def max_repeat(self) -> int | None:
        """The repetition guard of the model card (``sampling.max_repeat``; absent or null: off)."""
        m = self.card.get("sampling", {}).get("max_repeat")
        return None if m is None else int(m)

    @property
    def genre_guidance(self) -> float | None:
        """Classifier-free genre guidance scale of the model card (``sampling.genre_guidance``; absent, null or
        1.0: off)."""
        s = self.card.get("sampling", {}).get("genre_guidance")
        return None if s is None or float(s) == 1.0 else float(s)

    @property
    def text_guidance(self) -> float | None:
        """Separate text guidance scale of the model card (``sampling.text_guidance``; absent or null: the text
        shares the genre guidance scale)."""
        s = self.card.get("sampling", {}).get("text_guidance")
        return None if s is None else float(s)

    @property
    def text_guidance_attributes(self) -> dict[str, float]:
        """Text guidance scales of texts naming only some attributes (``sampling.text_guidance_attributes``,
        {"arm": 3.0}; absent: none; :meth:`engine.models.gpt_dancer.DanceGenerator.text_scale_of`)."""
        block = self.card.get("sampling", {}).get("text_guidance_attributes") or {}
        return {str(k): float(v) for k, v in block.items() if k != "note"}

    @property
    def text_prompts(self) -> str:
        """How the GPT reads a text control (``sampling.text_prompts``): "attributes" (a sentence is matched to the
        measured-caption attributes first, :mod:`engine.models.text_prompts`) or "sentence" (its own embedding).
        Absent: "attributes" for GPTs with the energy entries (trained on measured captions, issue 14), else
        "sentence"."""
        from engine.models.conditioning import has_energy

        mode = self.card.get("sampling", {}).get("text_prompts")
        return str(mode) if mode is not None else ("attributes" if has_energy(self.gpt.cfg.text_dim) else "sentence")

    @property
    def genre_switch(self) -> dict[str, Any]:
        """What a live genre switch does (``sampling.genre_switch``, checked by :func:`check_card`): ``boost`` (the
        genre guidance factor), ``boost_tokens`` (for how many tokens), ``context`` (GPT positions kept through
        the switch; null: the whole window), ``decoder`` ("restart": the streaming decoder restarts too; "keep") and
        ``ease`` (frames the output eases over after a decoder restart), ``ease_shape`` (how: "blend", "offset" or
        "turn"), ``snap`` (joints the ease gives the new rotation at once, their child carrying the eased limb),
        ``primer`` (tokens of real dance of the new style the restarted GPT window holds, from the folder's primer
        bank; 0: none), ``primer_candidates`` and ``primer_hands_feet`` (how many of the bank's nearest snippets
        are decoded to choose it by the seam in joint positions, and the weight of the hands and feet there; absent:
        1, the feature's nearest); absent entries keep the generator's defaults."""
        return dict(self.card.get("sampling", {}).get("genre_switch") or {})

    @property
    def genre_start(self) -> dict[str, Any]:
        """The genre guidance boost at a dance's start (``sampling.genre_start``, checked by :func:`check_card`):
        ``boost`` (the factor) for ``boost_tokens`` tokens from BOS, for the dances of ``genres`` (absent: every
        genre); absent: none."""
        return dict(self.card.get("sampling", {}).get("genre_start") or {})

    @property
    def couple_genre_start(self) -> dict[str, Any]:
        """The start boost of a couple's leader: ``couple.genre_start`` where the card sets it (an object of
        ``sampling.genre_start`` keys; ``boost_tokens`` 0: no boost), else the solo's :attr:`genre_start` (session
        11; ``docs/models.md``, "Couples")."""
        couple = self.card.get("couple") or {}
        if "genre_start" in couple and couple["genre_start"] is not None:
            return dict(couple["genre_start"])
        return self.genre_start

    @property
    def energy(self) -> dict[str, Any]:
        """How the energy control is read (``sampling.energy``): ``share`` (of the energy the unconditional row
        carries under genre guidance) and ``range`` (the labels of levels 0 and 1); absent: the defaults."""
        return dict(self.card.get("sampling", {}).get("energy") or {})

    def generator_options(self, couple: bool = False) -> dict[str, Any]:
        """The card's genre-start, genre-switch and energy settings as :class:`engine.models.gpt_dancer.DanceGenerator`
        keyword arguments (only those the card sets). ``couple``: for a couple's leader (its start boost is
        :attr:`couple_genre_start`)."""
        sw, en = self.genre_switch, self.energy
        st = self.couple_genre_start if couple else self.genre_start
        out: dict[str, Any] = {}
        if st:  # boost and boost_tokens together (check_card)
            out["start_boost"] = (float(st["boost"]), int(st["boost_tokens"]))
            if "genres" in st:
                out["start_genres"] = [genre_id(g) for g in st["genres"]]
        if "boost" in sw:  # with boost_tokens (check_card)
            out["switch_boost"] = (float(sw["boost"]), int(sw["boost_tokens"]))
        if "context" in sw:
            out["switch_context"] = None if sw["context"] is None else int(sw["context"])
        if "decoder" in sw:
            out["switch_decoder"] = sw["decoder"] == "restart"
        if "ease" in sw:
            out["switch_ease"] = int(sw["ease"])
        if "ease_shape" in sw:
            out["switch_ease_shape"] = str(sw["ease_shape"])
        if sw.get("snap"):
            out["switch_snap"] = [str(j) for j in sw["snap"]]
        if sw.get("primer"):
            out["switch_primer"] = (int(sw["primer"]), self.primer_bank)
            out["switch_primer_match"] = (int(sw.get("primer_candidates", 1)), float(sw.get("primer_hands_feet", 1.0)))
        if "share" in en:
            out["energy_share"] = float(en["share"])
        if "range" in en:
            out["energy_range"] = (float(en["range"][0]), float(en["range"][1]))
        return out

    @property
    def text_baseline(self) -> str | None:
        """What the unconditional guidance row carries while a performer has a text (``sampling.text_baseline``):
        "phrases" (the mean caption phrase, :func:`engine.models.text_prompts.phrase_baseline`) or None (no text)."""
        b = self.card.get("sampling", {}).get("text_baseline")
        return None if b is None else str(b)

    @property
    def top_k(self) -> int | None:
        k = self.card.get("sampling", {}).get("top_k")
        return None if k is None else int(k)


def load_dance_model(model_dir: Path | None = None) -> DanceModel:
    """Load ``vqvae.*`` and ``gpt.*`` from a model folder (default: the shipped model)."""
    d = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    if not d.is_dir():
        raise FileNotFoundError(f"model folder {d} does not exist")
    missing = [n for n in ("vqvae.json", "vqvae.safetensors", "gpt.json", "gpt.safetensors") if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(f"model folder {d} lacks {missing} (has {sorted(p.name for p in d.iterdir())})")
    from engine.models.model_card import check_card

    card_path = d / MODEL_CARD
    try:
        card = check_card(json.loads(card_path.read_text()), card_path) if card_path.is_file() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{exc}" if str(d) in str(exc) else f"{card_path}: {exc}") from None
    gpt = load_gpt(d)
    gpt.eval()
    if gpt.cfg.cond_dim != COND_DIM:
        raise ValueError(f"{d}: GPT cond_dim {gpt.cfg.cond_dim} != {COND_DIM} of engine.models.conditioning")
    bank = None
    if (card.get("sampling", {}).get("genre_switch") or {}).get("primer"):
        if not (d / PRIMER_BANK_FILE).is_file():
            raise FileNotFoundError(f"{card_path}: sampling.genre_switch.primer needs {d / PRIMER_BANK_FILE}, which is "
                                    "missing (python3 -m engine.train.primer_bank builds it)")
        bank = PrimerBank.load(d / PRIMER_BANK_FILE)
    return DanceModel(vq=load_vqvae(d), gpt=gpt, card=card, primer_bank=bank)
