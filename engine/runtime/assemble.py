"""The one place an engine is assembled: a typed spec in, a motion model and a runtime out.

The CLI (``groovecast play/live/generate``) and ``bench/`` both call this module; nothing imports the CLI.
It is also the only runtime module that knows model kinds: it reads the kind from the model card
(``model_kind`` in ``model.json``; folders without it are VQ-VAE + GPT) or takes a kind name in place of
a folder (``--model retrieval``), and builds that kind. The runtime itself drives whatever it is handed
through :class:`~engine.models.protocol.MotionModel`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.clock import SYSTEM_CLOCK, Clock
from engine.models.couple import COUPLE_KIND
from engine.models.dance_model import DEFAULT_MODEL_DIR, GPT_KIND
from engine.models.protocol import MotionModel
from engine.models.staging import StagedModel, StagingConfig
from engine.runtime.runtime import DanceRuntime, RuntimeConfig
from engine.runtime.sinks import Sink

log = logging.getLogger(__name__)

#: Kind names accepted in place of a model folder.
BUILTIN_KINDS = ("retrieval",)


class AssemblyError(ValueError):
    """The spec cannot be built (bad folder, backend, genre, setting); the message says why."""


@dataclass(frozen=True)
class ModelSpec:
    """Which motion model, and how every performer starts.

    Attributes:
        model: a model folder, a kind name of :data:`BUILTIN_KINDS`, or None for the shipped model.
        backend: GPT step backend (torch, onnxruntime, tensorrt, auto).
        decode: engine of the streaming VQ-VAE decoder (torch, onnxruntime).
        performers: dancers stepped together in one batch.
        threads: torch intra-op threads.
        seed: random seed of performer 0 (others seed + i).
        genre, text, energy, temperature, top_k: starting controls (None: the model card's sampling settings;
            energy None: unset).
        beat_guidance: candidates near predicted beats (0: plain sampling; None: the model card's).
        text_steer: weight of beat guidance's text attribute term (0: off; None: the model card's
            ``sampling.beat_guidance.text_weight``); needs beat guidance.
        max_repeat: the repetition guard, longest run of one token (0: off; None: the model card's).
        genre_guidance: classifier-free genre guidance scale (1: off; None: the model card's).
        text_guidance: separate text guidance scale (a third GPT row per performer with a text; None: the model
            card's ``sampling.text_guidance``, whose absence means the genre's scale); needs genre guidance.
        text_prompts: how text controls are embedded, "sentence" or "attributes" (None: the model card's).
        data: the motion capture folder a retrieval model indexes (None: ``../shared/data``).
        cache: where a retrieval index is cached (None: ``.cache/retrieval`` in the working directory).
        couple: salsa couples (kind ``couple``): ``performers`` counts dancers, two per couple (leader, follower),
            so it must be even; the model folder must hold a follower (``follower.*``).
        staging: how every performer is staged (facing the front, within the stage radius, joint speeds
            limited; ``engine/models/staging.py``); every kind is wrapped in it.
    """

    model: str | Path | None = None
    backend: str = "auto"
    decode: str = "onnxruntime"
    performers: int = 1
    threads: int = 1
    seed: int = 0
    genre: str = "salsa"
    text: str | None = None
    energy: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    beat_guidance: int | None = None
    text_steer: float | None = None
    max_repeat: int | None = None
    genre_guidance: float | None = None
    text_guidance: float | None = None
    text_prompts: str | None = None
    data: Path | None = None
    cache: Path | None = None
    couple: bool = False
    staging: StagingConfig = field(default_factory=StagingConfig)


@dataclass(frozen=True)
class EngineSpec:
    """A whole engine: the model and the runtime's scheduling."""

    model: ModelSpec = field(default_factory=ModelSpec)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def default_model_dir() -> Path:
    """The shipped default model (engine/data/models/default)."""
    return DEFAULT_MODEL_DIR


def model_kind(spec: ModelSpec) -> str:
    """The kind the spec names: ``couple`` when asked for, a builtin kind name, or the ``model_kind`` of the
    folder's model card."""
    if spec.couple:
        return COUPLE_KIND
    if isinstance(spec.model, str) and spec.model in BUILTIN_KINDS:
        return spec.model
    import json

    card = Path(spec.model or default_model_dir()) / "model.json"
    if card.is_file():
        try:
            data = json.loads(card.read_text())
        except (ValueError, OSError) as exc:
            raise AssemblyError(f"{card}: cannot read the model card: {exc}") from None
        if isinstance(data, dict):
            return str(data.get("model_kind", GPT_KIND))
        # not an object: the GPT loader's card check names what is wrong
    return GPT_KIND


def build_model(spec: ModelSpec) -> MotionModel:
    """Load and build the motion model of ``spec`` with its performers added, staged (:class:`StagedModel`)."""
    if spec.performers < 1:
        raise AssemblyError("performers must be >= 1")
    kind = model_kind(spec)
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise AssemblyError(f"unknown model kind {kind!r}; known: {sorted(_BUILDERS)}")
    if spec.energy is not None and not (math.isfinite(spec.energy) and 0.0 <= spec.energy <= 1.0):
        raise AssemblyError(f"--energy must be in [0, 1], got {spec.energy}")
    model = builder(spec)
    if spec.energy is not None and not model.capabilities.energy:
        raise AssemblyError("--energy: this model was not trained with the energy control (its text_dim has no "
                            "energy entries)")
    # A couple stages itself as a pair (engine/models/couple.py): staging each partner on its own would move them
    # independently and break their placement.
    if kind == COUPLE_KIND:
        return model
    return StagedModel(model, spec.staging)


def build_runtime(spec: EngineSpec, sinks: Sequence[Sink] = (), clock: Clock = SYSTEM_CLOCK,
                  model: MotionModel | None = None) -> DanceRuntime:
    """The model (built unless given) + the causal music analyzer + the runtime, ready to ``run``."""
    from engine.analysis.music import MusicAnalyzer

    return DanceRuntime(model or build_model(spec.model), MusicAnalyzer(), sinks=list(sinks), config=spec.runtime,
                        clock=clock)


def _build_gpt(spec: ModelSpec) -> MotionModel:
    gen, _, desc = gpt_generator(spec, spec.performers)
    for _ in range(spec.performers):
        gen.add_performer(replace(desc))  # each performer owns its controls
    log.info("model %s, backend %s on %s, %d performer(s), temperature %.2f, top-k %d, beat guidance %s, "
             "max repeat %s, genre guidance %s", spec.model or default_model_dir(), gen.backend.name,
             gen.backend.device, spec.performers, desc.temperature, desc.top_k,
             f"{gen.guidance.candidates} candidates" if gen.guidance.enabled else "off", gen.max_repeat or "off",
             gen.genre_guidance or "off")
    return gen


def gpt_generator(spec: ModelSpec, capacity: int, couple: bool = False) -> tuple[Any, Any, Any]:
    """The VQ-VAE + GPT generator of ``spec`` for ``capacity`` performers (no performers yet; two cache rows each
    under genre guidance), its loaded model and the starting controls. ``couple``: the generator leads couples, so
    its beat guidance and start boost are the card's couple settings (``couple.beat_guidance`` over
    ``sampling.beat_guidance``, ``couple.genre_start`` in place of ``sampling.genre_start``)."""
    import torch

    from engine.models.conditioning import genre_id
    from engine.models.dance_model import load_dance_model
    from engine.models.gpt_dancer import DanceGenerator, cache_rows
    from engine.models.protocol import Controls
    from engine.models.text_prompts import phrase_baseline, prompt_embedder
    from export.base import BackendUnavailable
    from export.decoder_backend import create_decoder_runner
    from export.select import create_backend

    torch.set_num_threads(max(1, spec.threads))
    model_dir = Path(spec.model) if spec.model is not None else default_model_dir()
    try:
        gid = genre_id(spec.genre)
        dm = load_dance_model(model_dir)
        genre_guidance = dm.genre_guidance if spec.genre_guidance is None else spec.genre_guidance
        text_guidance = dm.text_guidance if spec.text_guidance is None else spec.text_guidance
        be = create_backend(spec.backend, dm.gpt, capacity=cache_rows(capacity, genre_guidance, text_guidance,
                                                                  bool(dm.text_guidance_attributes)),
                            threads=max(1, spec.threads))
    except (ValueError, BackendUnavailable, FileNotFoundError, OSError) as exc:
        raise AssemblyError(f"{exc}" if "model" in str(exc) else f"{model_dir}: {exc}") from None
    text_prompts = dm.text_prompts if spec.text_prompts is None else spec.text_prompts
    try:
        emb = prompt_embedder(text_prompts)([spec.text])[0] if spec.text else None
    except ValueError as exc:
        raise AssemblyError(str(exc)) from None
    temp = dm.temperature if spec.temperature is None else spec.temperature
    k = (dm.top_k or 0) if spec.top_k is None else spec.top_k
    card_guidance = dm.couple_beat_guidance if couple else dm.beat_guidance
    guidance = card_guidance if spec.beat_guidance is None else card_guidance.with_candidates(spec.beat_guidance)
    if spec.text_steer is not None:
        try:
            guidance = guidance.with_text_weight(spec.text_steer)
        except ValueError as exc:
            raise AssemblyError(str(exc)) from None
    max_repeat = dm.max_repeat if spec.max_repeat is None else spec.max_repeat
    try:
        gen = DanceGenerator(be, dm.vq, seed=spec.seed, foot_lock=dm.foot_lock,
                             decoder_runner=create_decoder_runner(spec.decode), guidance=guidance,
                             max_repeat=max_repeat, genre_guidance=genre_guidance, text_guidance=text_guidance,
                             text_prompts=text_prompts, text_guidance_attributes=dm.text_guidance_attributes,
                             **dm.generator_options(couple),
                             text_baseline=phrase_baseline if dm.text_baseline == "phrases" else None)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise AssemblyError(f"decoder {spec.decode}: {exc}") from None
    return gen, dm, Controls(genre=gid, text=emb, energy=spec.energy, temperature=temp, top_k=k)


def _build_couple(spec: ModelSpec) -> MotionModel:
    return build_couple(spec)


def build_couple(spec: ModelSpec, follower: Any = None, config: Any = None) -> Any:
    """Salsa couples: the folder's GPT leads (built as a solo GPT is: the card's sampling, genre guidance
    included; its beat guidance the card's ``couple.beat_guidance`` where set), its follower (``follower.*``)
    follows; two performers per couple. The one construction of the couple kind: ``play``/``live``/``generate
    --couple`` and the couple measures (``engine/train/couple_eval.py``) all build it here. ``follower`` (a
    :class:`~engine.models.follower.FollowerGPT`) and ``config`` (its
    :class:`~engine.models.follower.FollowerConfig`) replace the folder's, for the measures' comparison rows."""
    from engine.models.couple import CoupleDancer
    from engine.models.follower import load_follower
    from engine.models.gpt_dancer import DanceGenerator
    from export.decoder_backend import create_decoder_runner
    from export.follower_backend import FollowerBackend

    if spec.performers % 2:
        raise AssemblyError(f"a couple is two performers: performers must be even (2 per couple), "
                            f"got {spec.performers}")
    if spec.genre != "salsa":
        raise AssemblyError(f"couples dance salsa only (the partner data); got genre {spec.genre!r}")
    if isinstance(spec.model, str) and spec.model in BUILTIN_KINDS:
        raise AssemblyError(f"couples need a VQ-VAE + GPT model folder with a follower, not {spec.model!r}")
    n = spec.performers // 2
    model_dir = Path(spec.model) if spec.model is not None else default_model_dir()
    leader, dm, controls = gpt_generator(spec, n, couple=True)
    if follower is None:
        try:
            follower = load_follower(model_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise AssemblyError(str(exc)) from None
    fol = follower
    if fol.cfg.vocab_size != dm.gpt.cfg.vocab_size or fol.cfg.cond_dim != dm.gpt.cfg.cond_dim:
        raise AssemblyError(f"{model_dir}: the follower (vocab {fol.cfg.vocab_size}) does not fit the VQ-VAE + GPT "
                            f"(vocab {dm.gpt.cfg.vocab_size})")
    steer, steer_radius = dm.couple_follower_steer
    if not steer.enabled:
        steer_radius = 0.0
    gen = DanceGenerator(FollowerBackend(fol, capacity=n), dm.vq, seed=spec.seed + 10_000, foot_lock=dm.foot_lock,
                         decoder_runner=create_decoder_runner(spec.decode), max_repeat=leader.max_repeat,
                         guidance=steer)
    cfg = config if config is not None else fol.fcfg
    model = CoupleDancer(leader, gen, cfg, spec.staging, steer_radius_m=steer_radius)
    for _ in range(n):
        model.add_performer(replace(controls))
    log.info("couples from %s: %d couple(s) (%d performers), leader backend %s, genre guidance %s, follower pull "
             "%.2f", model_dir, n, spec.performers, leader.backend.name, leader.genre_guidance or "off", cfg.pull)
    return model


def _build_retrieval(spec: ModelSpec) -> MotionModel:
    from engine.models.capture import default_data_dir
    from engine.models.conditioning import GENRES, genre_id
    from engine.models.protocol import Controls
    from engine.models.retrieval import RetrievalDancer, index_for

    data = Path(spec.data) if spec.data is not None else default_data_dir()
    cache = Path(spec.cache) if spec.cache is not None else Path.cwd() / ".cache" / "retrieval"
    try:
        gid = genre_id(spec.genre)
        index = index_for(data, cache)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise AssemblyError(f"retrieval: {exc}") from None
    model = RetrievalDancer(index, capacity=spec.performers, seed=spec.seed)
    if GENRES[gid] not in model.genres():
        log.warning("retrieval: no %s capture (the index holds %s); dancing from every style", GENRES[gid],
                    ", ".join(model.genres()))
    temp = 1.0 if spec.temperature is None else spec.temperature
    for _ in range(spec.performers):
        model.add_performer(Controls(genre=gid, temperature=temp))
    log.info("retrieval over %d capture frames (%d beat segments; %s) from %s, %d performer(s), genre %s",
             len(index.quat), len(index.beats), ", ".join(model.genres()), data, spec.performers, GENRES[gid])
    return model


_BUILDERS: dict[str, Callable[[ModelSpec], MotionModel]] = {GPT_KIND: _build_gpt, "retrieval": _build_retrieval,
                                                          COUPLE_KIND: _build_couple}
