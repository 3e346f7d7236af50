"""Beat-guided token choice: among tokens sampled from the GPT, keep the one that dips on the predicted beat.

Bailando's motion beats are the local minima of the (smoothed) mean joint speed; a dance is on the beat
when those minima fall on the music's beats. The GPT gives a distribution over the next token pair; on
tokens near a *predicted* beat (the tracker's phase entries of the token's conditioning), ``candidates``
token pairs are drawn from that distribution, each is decoded after the frames already committed, and
the pair maximising

    log p(upper) + log p(lower) + weight * sum_beats exp(-d^2 / (2 * tolerance^2))

wins, ``d`` being the distance (frames) from the beat to the nearest local minimum of the smoothed speed
over the last committed frames plus the candidate's four. Away from beats the first draw is kept, which is
plain sampling.

Everything it reads is what the live engine has when it commits the token: the token's predicted beat
phase and the frames of earlier tokens. Nothing comes from the future, so the same code runs in
engine.models.gpt_dancer (live, batched, candidates decoded from each performer's streaming
decoder state without committing) and in :mod:`engine.train.generate` (offline rendering and evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from engine.models.motion_measures import per_frame_measures
from engine.models.pose_repr import CONTACT_POINTS, CONTACT_SLICE, locked_root_velocity
from engine.models.vector_fk import VectorFK
from engine.models.vqvae import DOWN

#: Model frame rate the speeds are measured at.
_FPS = 30.0


@dataclass(frozen=True)
class GuidanceConfig:
    """Settings of beat-guided sampling (the model card's ``sampling.beat_guidance`` block).

    Args:
        candidates: token pairs drawn per guided token (<= 1 turns guidance off).
        weight: weight of the beat term against the candidates' log-probability.
        back: a beat up to this many frames before the token still steers it (the dip's rising side).
        sigma: Gaussian smoothing of the speed curve, frames at 30 fps (Bailando's 5 at 60 fps).
        tolerance: width of the hit score, frames at 30 fps (BAS's 3 at 60 fps).
        history: committed frames kept per performer for the speed window.
        text_weight: weight of the text attribute term (0: off). A performer whose text is matched to caption
            attributes (:mod:`engine.models.text_prompts`, e.g. turn "high") draws candidates on every token,
            and each candidate scores ``text_weight * direction * z``: ``z`` the candidate's attribute (the
            measure of :func:`engine.models.motion_measures.frame_measures` over its four frames, rates from the last
            committed frame) standardised over the candidates, ``direction`` +1 for a "high" class, -1 for
            "low" (see :func:`steer_targets`). On a token no beat steers, the texted performer's candidate is
            drawn with odds ``p ** text_logp * exp(text_weight * direction * z)`` (see :meth:`BeatGuide.choose_batch`).
        text_logp: on those tokens, the weight of the candidates' log-probability (0: the GPT's own draws resampled
            by the text term alone; 1: each draw's odds also scaled by its probability, as at temperature 1/2).
        text_attributes: per attribute (``ATTRIBUTE_COLUMNS`` name), ``(name, scale, resample)``: that attribute's
            weight is ``text_weight * scale``, and with ``resample`` False its candidates are picked by
            ``logp + weight * direction * z`` on every token (the arg-max, no resampling: session 7's rule). The card
            writes it ``{"turn": {"scale": 0.75, "resample": false}}``; attributes not named: scale 1, resampled.
        energy_weight: weight of the energy term (0: off). A performer with an energy level ``e`` (0..1) scores its
            candidates ``energy_weight * (2 e - 1) * z``, ``z`` their mean joint speed standardised as the text
            term's speed (the target :data:`ENERGY_COLUMN`), and is steered and resampled as a texted performer
            (every token): level 0.5 is not steered, 0 toward the calmer draws, 1 toward the livelier ones,
            continuously in between. On tokens no beat steers its draws are resampled with odds
            ``exp(energy_weight * (2 e - 1) * z)`` without ``text_logp`` (unless it also has a text), so a level
            near 0.5 samples as plainly as no energy: with ``p ** text_logp`` every level would calm the dance
            (measured: level 0.75 moved 0.30 m/s where 0.5 moved 0.45).
        text_floor: the text term's speed floor (m/s; 0: off). A texted performer whose text asks for no calm (no
            speed "low", no energy below 0.5) and whose last ``text_floor_frames`` committed frames moved slower than
            this on average (mean root-relative joint speed: the dancer is stalling) scores each candidate
            ``- text_floor_weight * max(0, 1 - v / text_floor)``, ``v`` the candidate's own speed over its four
            frames: the livelier draws win until the dance moves again; a dancer moving faster than the floor is not
            steered by it. Without it a non-speed attribute's pick (the arg-max of ``log p + W z``, or ``p **
            text_logp`` odds) keeps taking the GPT's likeliest draws, which once the dancer stands still are still
            ones: "spinning" at seed 0 stood still for 6 s (session 10, ``docs/models.md``).
        text_floor_weight: the floor term's weight (log-odds against a standing candidate; 0: off).
        text_floor_frames: the committed frames whose mean speed opens the floor (30: 1 s).
        text_floor_attributes: the attributes (``ATTRIBUTE_COLUMNS`` names) whose texts the floor steers (empty: every
            one); a name ending in ``:low`` (``:high``) floors only texts asking for less (more) of it. The shipped
            card floors turning and the "low" side of arms and travel (``["turn", "arm:low", "travel:low"]``): "arms
            low" and "stay in place" stalled the dance without it (session 11), and floored "high" sides cost FID
            (session 10).
        text_side_floors: per side of an attribute ("travel:low"), the speed floor (m/s, > 0) of texts asking for that
            side, in place of ``text_floor`` (the floor still steers only the sides ``text_floor_attributes`` names,
            with its weight and frames; a performer with several targets takes the highest). Not used by the shipped
            card (session 15: "travel:low" 0.4 measured, see ``text_speed_one_sided``).
        text_side_scales: per side of an attribute ("arm:high", "travel:low"), the scale of the text term's weight
            for texts asking for that side, in place of the attribute's ``text_attributes`` scale (the resampling
            rule stays the attribute's).
        text_side_logp: per side of an attribute ("turn:high"), the texts asking for that side resample their draws on
            tokens no beat steers (whatever the attribute's ``resample``), with this weight of the candidates'
            log-probability in place of ``text_logp``: 0 is the GPT's own draws tilted by the text term alone,
            ``exp(W z)``, with no flattening towards its likeliest draws. A performer with several text targets takes
            the least of their weights (``text_logp`` for a target whose side is not named). The shipped card
            resamples "spinning" at 0.5, with side scale 3 (session 12): its arg-max pick (``log p + W z`` on every
            token) took the likeliest draws, and the dancer turned no more than without text (93 against 97 deg/s, at
            x0.77 the speed).
        text_side_targets: per side of an attribute ("travel:high"), ``(target, band)``: a feedback on the dance's own
            recent attribute. A text asking for that side is steered with its side's weight times ``g = clip((target
            - v) / band, 0, 1)`` (for a "low" side ``(v - target) / band``), ``v`` the attribute (as the text term
            measures its candidates, :meth:`BeatGuide.committed_attributes`) of its last ``text_target_frames``
            committed frames: a dance that already has as much as the target of what it asks for is not steered
            (its draws are resampled by their log-probability alone), one a band or more short of it with the whole
            weight (and before any frame is committed). Measured (session 13): one weight for every dance pushed
            the salsa dances, which the GPT's own text conditioning already made travel (0.61 against 0.45 m/s
            without text), as hard as the modern and Indian ones, which it made travel *less* (0.30 against 0.40),
            so a weight strong enough for those cost FID in every style and a gentle one left them short.
        text_target_frames: the committed frames whose mean attribute the side targets read (60: 2 s).
        text_speed_ceilings: per genre name (``conditioning.GENRES``; ``"*"``: any other, and no genre), a mean
            root-relative joint speed (m/s) that a text not asking for speed should not push the dance past (empty:
            off). A performer with a text target and none for speed or energy ("calm", "energetic" and an energy level
            ask for speed themselves) whose last ``text_target_frames`` committed frames move faster than its genre's
            ceiling ``S`` scores its candidates ``- text_ceiling_weight * g * z``, ``z`` their speed standardised over
            them and ``g = clip((v - S) / (text_ceiling_band * S), 0, 1)``: the calmer draws while it is over, nothing
            while it is within. Measured (session 14, seeds 3000-3023): the modern dances under "travel across the
            floor" and "spinning" flung their hands (hand acceleration 5.5 and 5.2 sd of the FID reference over its
            mean, against 2.9 without text and 1.4 for the real modern takes; mean speed 0.77 and 0.89 against 0.59
            m/s without text), and those dances alone put the travel and turning pairs over the FID bar (their
            uncontrolled dances in their place: within). The shipped card caps modern "travel across the floor" and
            "spinning" at 0.6 m/s; capping "stay in place" too met travel on every set but froze one more 2 s window
            of 144 on seeds 3000-3023, past the eval's stall margin (``docs/models.md``, session 14).
        text_ceiling_weight: the ceiling's weight (0: off).
        text_ceiling_attributes: the texts the ceiling steers, as ``text_floor_attributes`` names them ("travel:high":
            texts asking for more travel; empty: every text with no speed or energy target).
        text_ceiling_band: the speed over the ceiling, as a share of it, at which the ceiling acts with its whole
            weight.
        text_ground_weight: weight of the ground term (0: off). A performer with a text target that
            ``text_ground_attributes`` names whose last ``text_target_frames`` committed frames hover (the lowest
            contact point, ``pose_repr.CONTACT_POINTS``, averaged over them above ``text_ground_m``) scores its
            candidates ``- text_ground_weight * g * z``, ``z`` their lowest contact point averaged over their four
            frames, standardised over them, and ``g = clip((h - text_ground_m) / text_ground_m, 0, 1)``, ``h`` that
            committed mean: the draws with a foot nearer the floor while it hovers, nothing while it stands on it.
            Measured (session 16, seeds 0-23, project-made music): modern dances under "travel across the floor"
            had both feet over 5 cm off the floor in 52 % of their frames, in runs up to 5.2 s (mean longest 2.8 s),
            against 27 % / 1.4 s without text and 25 % / 0.9 s for real modern capture; the feet hovered, which FID
            on joint speeds does not see.
        text_ground_m: the hover height (m) of the ground term.
        text_ground_attributes: the texts the ground term steers, as ``text_floor_attributes`` names them (empty:
            every text).
        text_speed_neutral: the attributes (``ATTRIBUTE_COLUMNS`` names, not speed) whose text term ranks the
            candidates by the part of the attribute their speed does not explain (:func:`speed_residual`), so asking
            for less of it does not pick the stiller draws, nor asking for more the livelier ones. The shipped card
            names arms and travel (session 11; turning not: "no turns" then danced 1.3x faster and left the bar).
        text_speed_one_sided: sides of ``text_speed_neutral`` ("travel", "travel:low") whose residual is one-sided
            (:func:`speed_residual` with the target's direction): only the candidates the plain attribute would favour
            *for their speed* are corrected (for a "low" target the slower ones, for a "high" target the faster
            ones); the others keep their plain attribute. The two-sided residual also credits the other side: for
            "stay in place" a draw moving faster than the others travels "less than its speed predicts", so a
            stronger "stay" picked the livelier draws (measured, session 15, modern on real music: text scale 4 ->
            1.03 m/s and more travel, 0.55 against 0.50 m/s). The shipped card names none: with travel one-sided,
            the modern ceiling and a 0.4 m/s floor under "stay in place", travel on real music rose (modern on set A's
            windows 14/24 pairs, was 7/24) but "stay in place" froze on project-made music (11 % of its 2 s windows
            against 3 % uncontrolled, seeds 0-23: the eval's stall), docs/models.md "Session 15".
        select: how a token steered by the beats alone (no text term for its performer) picks its candidate.
            ``"argmax"``: the highest ``log p + weight * hits`` (the score above). Among candidates already drawn
            from the GPT the ``log p`` term favours the likeliest, like a lower temperature: with a decoder that
            dips on the beat itself (the body-dip decoder) a weight small enough to keep FID makes the dancer
            slow. ``"sample"``: a draw among the candidates with probability proportional to
            ``exp(weight * hits)`` (Gumbel-max over the candidates; no ``log p``, since they are draws from p), so
            weight 0 is plain sampling and a weight tilts the GPT's distribution toward the beat. Tokens of a
            performer with a text term are chosen by ``"argmax"`` either way.
        stage_weight: weight of the stage term (0: off). A solo performer the staging reports far from the stage
            centre (:meth:`GuideState.set_stage`, beyond ``stage_from`` of the radius) scores its candidates
            ``stage_weight * s * z``, ``z`` their travel towards the centre (mean foot-locked root velocity over the
            four frames, turned into the stage's frame, plus :data:`STAGE_MOTION` of its speed) standardised over the
            candidates and ``s`` how far out it is
            (0 at ``stage_from`` of the radius, 1 at the radius, at most 2); while it is out it is steered on every
            token, and on a token no beat steers its draws are resampled with odds ``exp(stage_weight * s * z)``
            (the GPT's own draws tilted toward the way home; 0 is plain sampling). So the dance itself turns back
            and the staging's corrections have less to do.
        stage_from: the fraction of the stage radius from which the stage term acts.
        energy_stage: the energy term's share of the stage term's weight while the stage term steers (0: the energy
            term keeps ``energy_weight`` alone). A performer with an energy level out on the stage scores its
            candidates ``(energy_weight + energy_stage * stage_weight * s) * (2 e - 1) * z`` (``s`` the stage strength
            above). The stage term picks among the candidates with a weight of ``stage_weight * s`` (4 x s in the
            shipped card, s about 0.2 on average and up to 2), which left the energy term's 0.2 no say in how fast the
            dancer goes home, and a third to a half of the tokens of a dance are chosen out there (session 11: the
            calm levels walked home as fast as the lively ones, level 0.25 moved as fast as 0.5). With a share the two
            terms trade travel home against the asked speed at a fixed ratio however hard the stage pulls; an
            uncontrolled performer and level 0.5 are not changed. The facing part's weight (``stage_facing * f``)
            counts as the stage term's too: it picks most tokens of a dancer who turned away too often, and without
            the share it again left the energy level no say (final main of session 11: level 0.25 above 0.5).
        stage_facing: weight of the stage term's facing part (0: off). A solo performer whose recent share of frames
            facing away from the front (the staging's report, :meth:`GuideState.set_stage`) exceeds ``stage_away``
            adds ``stage_facing * f * y`` to its candidates' stage scores, ``y`` how well each faces the front
            (the mean over the four frames of the cosine of its hips' facing, staged, from the front, at most
            :data:`STAGE_FACING_COS`) standardised over the candidates and ``f`` how far the share is over the
            budget (0 at ``stage_away``, 1 at twice it, at most 2); steered then on every token like the stage
            term. So a dancer who has turned away too often picks the draws that turn back (or do not turn away)
            while a dancer within its budget turns as it likes.
        stage_away: the share of recent frames facing away from the front from which the facing part acts.
        energy_speeds: per genre name (``conditioning.GENRES``; ``"*"``: any other, and no genre), the reference mean
            joint speed (m/s) of the energy's target speed (empty: off, the energy term steers by ``2 e - 1`` as
            above). With it the energy term is a feedback on the dance's own recent speed: a performer at level
            ``e`` has the target speed ``T = ref * (lo + (hi - lo) e)`` (``energy_span``), and on every token (level
            0.5 too) its candidates score ``w * d * z`` with ``d = clip((T - v) / (energy_band * T), -1, 1)``, ``v``
            the mean root-relative joint speed of its last ``energy_frames`` committed frames (``w`` the energy
            weight, with its stage share): a dance slower than its target picks the livelier draws, one faster the
            calmer ones, one on its target samples plainly. So each level's speed settles at its own target whatever
            the music, style or seed made of the dance (session 12: with ``2 e - 1`` alone the steps between levels
            were smaller than the dance-to-dance spread, salsa hardly responded, and a modern dance that stalled or
            raced reordered two levels of a 12-pair set).
        energy_span: (lo, hi), the target speed's factor of the reference at levels 0 and 1 (linear between).
        energy_band: the relative speed error at which the feedback's direction saturates (+-1).
        energy_frames: the committed frames whose mean speed the feedback reads (60: 2 s).
    """

    candidates: int = 16
    weight: float = 20.0
    back: int = 3
    sigma: float = 2.5
    tolerance: float = 1.5
    history: int = 8
    text_weight: float = 0.0
    select: str = "argmax"
    text_logp: float = 0.0
    text_attributes: tuple[tuple[str, float, bool], ...] = ()
    energy_weight: float = 0.0
    stage_weight: float = 0.0
    stage_from: float = 0.5
    stage_facing: float = 0.0
    stage_away: float = 0.1
    text_floor: float = 0.0
    text_floor_weight: float = 0.0
    text_floor_frames: int = 30
    text_floor_attributes: tuple[str, ...] = ()
    energy_stage: float = 0.0
    text_speed_neutral: tuple[str, ...] = ()
    text_side_scales: tuple[tuple[str, float], ...] = ()
    energy_speeds: tuple[tuple[str, float], ...] = ()
    energy_span: tuple[float, float] = (0.7, 1.1)
    energy_band: float = 0.25
    energy_frames: int = 60
    text_side_logp: tuple[tuple[str, float], ...] = ()
    text_side_targets: tuple[tuple[str, float, float], ...] = ()
    text_target_frames: int = 60
    text_speed_ceilings: tuple[tuple[str, float], ...] = ()
    text_ceiling_weight: float = 0.0
    text_ceiling_band: float = 0.25
    text_ceiling_attributes: tuple[str, ...] = ()
    text_speed_one_sided: tuple[str, ...] = ()
    text_side_floors: tuple[tuple[str, float], ...] = ()
    text_ground_weight: float = 0.0
    text_ground_m: float = 0.05
    text_ground_attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.candidates < 0 or self.weight < 0 or self.back < 0 or self.sigma < 0 or self.history < 1
                or self.text_floor_frames < 2):
            raise ValueError(f"invalid beat guidance settings {self}")
        if not (math.isfinite(self.text_weight) and self.text_weight >= 0):
            raise ValueError(f"beat guidance text_weight must be a finite number >= 0, got {self.text_weight!r}")
        if self.select not in SELECTS:
            raise ValueError(f"beat guidance select must be one of {', '.join(SELECTS)}, got {self.select!r}")
        if not (math.isfinite(self.text_logp) and self.text_logp >= 0):
            raise ValueError(f"beat guidance text_logp must be a finite number >= 0, got {self.text_logp!r}")
        if not (math.isfinite(self.energy_weight) and self.energy_weight >= 0):
            raise ValueError(f"beat guidance energy_weight must be a finite number >= 0, got {self.energy_weight!r}")
        if not (math.isfinite(self.energy_stage) and self.energy_stage >= 0):
            raise ValueError(f"beat guidance energy_stage must be a finite number >= 0, got {self.energy_stage!r}")
        for key, ref in self.energy_speeds:
            if not (isinstance(key, str) and math.isfinite(ref) and ref > 0):
                raise ValueError(f"beat guidance energy_speeds must map genre names (or \"*\") to speeds > 0 m/s, "
                                 f"got {key!r}: {ref!r}")
        lo, hi = self.energy_span
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"beat guidance energy_span must be two factors 0 < lo <= hi, got {self.energy_span!r}")
        if not (math.isfinite(self.energy_band) and self.energy_band > 0) or self.energy_frames < 2:
            raise ValueError(f"beat guidance energy_band must be > 0 and energy_frames >= 2, got {self.energy_band!r}, "
                             f"{self.energy_frames!r}")
        if not (math.isfinite(self.stage_weight) and self.stage_weight >= 0 and 0 <= self.stage_from < 1):
            raise ValueError(f"beat guidance stage_weight must be a finite number >= 0 and stage_from within [0, 1), "
                             f"got {self.stage_weight!r}, {self.stage_from!r}")
        if not (math.isfinite(self.stage_facing) and self.stage_facing >= 0 and 0 < self.stage_away < 1):
            raise ValueError(f"beat guidance stage_facing must be a finite number >= 0 and stage_away within (0, 1), "
                             f"got {self.stage_facing!r}, {self.stage_away!r}")
        for name in ("text_floor", "text_floor_weight"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"beat guidance {name} must be a finite number >= 0, got {v!r}")
        for key in ("text_floor_attributes", "text_speed_neutral", "text_ceiling_attributes", "text_speed_one_sided",
                    "text_ground_attributes"):
            names = [n.split(":")[0] if n.count(":") == 1 and n.split(":")[1] in ("low", "high") else n
                     for n in getattr(self, key)]
            if names and not set(names) <= set(ATTRIBUTE_COLUMNS):
                raise ValueError(f"beat guidance {key} must name some of {sorted(ATTRIBUTE_COLUMNS)} (a name may end "
                                 f"in :low or :high), got {list(getattr(self, key))!r}")
        for field in ("text_side_scales", "text_side_logp", "text_side_floors"):
            for key, scale in getattr(self, field):
                name, _, side = key.partition(":")
                if (name not in ATTRIBUTE_COLUMNS or side not in ("low", "high")
                        or not (math.isfinite(scale) and scale >= 0)):
                    raise ValueError(f"beat guidance {field} must map NAME:low or NAME:high (NAME one of "
                                     f"{sorted(ATTRIBUTE_COLUMNS)}) to a number >= 0, got {key!r}: {scale!r}")
        for key, target, band in self.text_side_targets:
            name, _, side = key.partition(":")
            if (name not in ATTRIBUTE_COLUMNS or side not in ("low", "high") or not math.isfinite(target)
                    or not (math.isfinite(band) and band > 0)):
                raise ValueError(f"beat guidance text_side_targets must map NAME:low or NAME:high (NAME one of "
                                 f"{sorted(ATTRIBUTE_COLUMNS)}) to [target, band > 0], got {key!r}: "
                                 f"[{target!r}, {band!r}]")
        for key, ref in self.text_speed_ceilings:
            if not (isinstance(key, str) and math.isfinite(ref) and ref > 0):
                raise ValueError(f"beat guidance text_speed_ceilings must map genre names (or \"*\") to speeds > 0 "
                                 f"m/s, got {key!r}: {ref!r}")
        if not (math.isfinite(self.text_ground_weight) and self.text_ground_weight >= 0
                and math.isfinite(self.text_ground_m) and self.text_ground_m > 0):
            raise ValueError(f"beat guidance text_ground_weight must be >= 0 and text_ground_m > 0, got "
                             f"{self.text_ground_weight!r}, {self.text_ground_m!r}")
        if not (math.isfinite(self.text_ceiling_weight) and self.text_ceiling_weight >= 0
                and math.isfinite(self.text_ceiling_band) and self.text_ceiling_band > 0):
            raise ValueError(f"beat guidance text_ceiling_weight must be >= 0 and text_ceiling_band > 0, got "
                             f"{self.text_ceiling_weight!r}, {self.text_ceiling_band!r}")
        if self.text_target_frames < 2:
            raise ValueError(f"beat guidance text_target_frames must be >= 2, got {self.text_target_frames!r}")
        if any(n.split(":")[0] == "speed" for n in self.text_speed_neutral):
            raise ValueError("beat guidance text_speed_neutral cannot name speed (the attribute it is neutral to)")
        if any(not f > 0 for _, f in self.text_side_floors):
            raise ValueError(f"beat guidance text_side_floors must be speeds > 0 m/s, got "
                             f"{dict(self.text_side_floors)!r}")
        if not _sides(self.text_speed_one_sided) <= _sides(self.text_speed_neutral):
            raise ValueError(f"beat guidance text_speed_one_sided must name sides of text_speed_neutral "
                             f"{list(self.text_speed_neutral)!r}, got {list(self.text_speed_one_sided)!r}")
        for name, scale, resample in self.text_attributes:
            if name not in ATTRIBUTE_COLUMNS or not (math.isfinite(scale) and scale >= 0) or not isinstance(resample,
                                                                                                           bool):
                raise ValueError(f"beat guidance text_attributes: {name!r} must name one of "
                                 f"{sorted(ATTRIBUTE_COLUMNS)} with a scale >= 0 and resample true/false, "
                                 f"got scale {scale!r}, resample {resample!r}")

    def text_scale(self, column: int) -> tuple[float, bool]:
        """(weight, resample) of the text term for an attribute column (``ATTRIBUTE_COLUMNS``; the energy term's
        for :data:`ENERGY_COLUMN`)."""
        if column == ENERGY_COLUMN:
            return self.energy_weight, True
        for name, scale, resample in self.text_attributes:
            if ATTRIBUTE_COLUMNS[name] == column:
                return self.text_weight * scale, resample
        return self.text_weight, True

    def text_side_weight(self, column: int, direction: float) -> float:
        """The text term's weight for a target (attribute column, direction): ``text_weight`` times the side's
        scale in ``text_side_scales`` when it names the side ("arm:high"), else the attribute's (:meth:`text_scale`)."""
        side = "high" if direction > 0 else "low"
        for key, scale in self.text_side_scales:
            name, _, s = key.partition(":")
            if s == side and column != ENERGY_COLUMN and ATTRIBUTE_COLUMNS[name] == column:
                return self.text_weight * scale
        return self.text_scale(column)[0]

    def side_logp(self, column: int, direction: float) -> float | None:
        """The ``text_side_logp`` weight of a target (attribute column, direction), None when its side is not named."""
        side = "high" if direction > 0 else "low"
        for key, lw in self.text_side_logp:
            name, _, s = key.partition(":")
            if s == side and column != ENERGY_COLUMN and ATTRIBUTE_COLUMNS[name] == column:
                return lw
        return None

    def resample_logp(self, targets: tuple[tuple[int, float], ...]) -> float:
        """The weight of the candidates' log-probability when a performer with these targets resamples its draws:
        the least of its text targets' (``text_side_logp`` for a named side, else ``text_logp``); 0 with no text
        target (an energy-only performer)."""
        ws = [self.text_logp if (lw := self.side_logp(c, d)) is None else lw for c, d in targets if c != ENERGY_COLUMN]
        return min(ws) if ws else 0.0

    @property
    def text_on(self) -> bool:
        """Whether the text term steers at all (some attribute's weight > 0)."""
        return any(self.text_scale(c)[0] > 0 for c in ATTRIBUTE_COLUMNS.values())

    @property
    def steer_on(self) -> bool:
        """Whether the text or the energy term steers at all."""
        return self.text_on or self.energy_weight > 0

    @property
    def enabled(self) -> bool:
        return self.candidates > 1 and self.weight > 0

    @classmethod
    def from_card(cls, block: dict | None) -> GuidanceConfig:
        """From a model card's ``beat_guidance`` block (missing or empty: off)."""
        if not block:
            return cls(candidates=1, weight=0.0)
        known = set(cls.__dataclass_fields__)
        unknown = set(block) - known
        if unknown:
            raise ValueError(f"unknown beat_guidance keys {sorted(unknown)}; known: {sorted(known)}")
        d = cls()
        return cls(candidates=int(block.get("candidates", d.candidates)), weight=float(block.get("weight", d.weight)),
                   back=int(block.get("back", d.back)), sigma=float(block.get("sigma", d.sigma)),
                   tolerance=float(block.get("tolerance", d.tolerance)), history=int(block.get("history", d.history)),
                   text_weight=float(block.get("text_weight", d.text_weight)),
                   select=str(block.get("select", d.select)),
                   text_logp=float(block.get("text_logp", d.text_logp)),
                   text_attributes=_text_attributes(block.get("text_attributes")),
                   energy_weight=float(block.get("energy_weight", d.energy_weight)),
                   stage_weight=float(block.get("stage_weight", d.stage_weight)),
                   stage_from=float(block.get("stage_from", d.stage_from)),
                   stage_facing=float(block.get("stage_facing", d.stage_facing)),
                   stage_away=float(block.get("stage_away", d.stage_away)),
                   text_floor=float(block.get("text_floor", d.text_floor)),
                   text_floor_weight=float(block.get("text_floor_weight", d.text_floor_weight)),
                   text_floor_frames=int(block.get("text_floor_frames", d.text_floor_frames)),
                   text_floor_attributes=_names(block.get("text_floor_attributes", []), "text_floor_attributes"),
                   text_speed_neutral=_names(block.get("text_speed_neutral", []), "text_speed_neutral"),
                   text_speed_one_sided=_names(block.get("text_speed_one_sided", []), "text_speed_one_sided"),
                   text_side_floors=_side_scales(block.get("text_side_floors", {}), "text_side_floors"),
                   text_side_scales=_side_scales(block.get("text_side_scales", {})),
                   text_side_logp=_side_scales(block.get("text_side_logp", {}), "text_side_logp"),
                   text_side_targets=_side_targets(block.get("text_side_targets", {})),
                   text_target_frames=int(block.get("text_target_frames", d.text_target_frames)),
                   text_speed_ceilings=_energy_speeds(block.get("text_speed_ceilings", {}), "text_speed_ceilings"),
                   text_ceiling_weight=float(block.get("text_ceiling_weight", d.text_ceiling_weight)),
                   text_ceiling_band=float(block.get("text_ceiling_band", d.text_ceiling_band)),
                   text_ceiling_attributes=_names(block.get("text_ceiling_attributes", []), "text_ceiling_attributes"),
                   text_ground_weight=float(block.get("text_ground_weight", d.text_ground_weight)),
                   text_ground_m=float(block.get("text_ground_m", d.text_ground_m)),
                   text_ground_attributes=_names(block.get("text_ground_attributes", []), "text_ground_attributes"),
                   energy_stage=float(block.get("energy_stage", d.energy_stage)),
                   energy_speeds=_energy_speeds(block.get("energy_speeds", {})),
                   energy_span=_energy_span(block.get("energy_span", list(d.energy_span))),
                   energy_band=float(block.get("energy_band", d.energy_band)),
                   energy_frames=int(block.get("energy_frames", d.energy_frames)))

    def with_candidates(self, n: int) -> GuidanceConfig:
        """These settings with ``n`` candidates (``n`` <= 1: off; from off: the default settings)."""
        if n <= 1:
            return GuidanceConfig(candidates=1, weight=0.0)
        base = self if self.enabled else GuidanceConfig()
        return replace(base, candidates=int(n))

    def with_text_weight(self, w: float) -> GuidanceConfig:
        """These settings with the text attribute term's weight ``w`` (no effect while guidance is off)."""
        return replace(self, text_weight=float(w))

    def to_card(self) -> dict:
        out: dict[str, Any] = {"candidates": self.candidates, "weight": self.weight, "back": self.back,
                                       "sigma": self.sigma, "tolerance": self.tolerance, "history": self.history}
        if self.text_weight:
            out["text_weight"] = self.text_weight
        if self.select != "argmax":
            out["select"] = self.select
        if self.text_logp:
            out["text_logp"] = self.text_logp
        if self.text_attributes:
            out["text_attributes"] = {n: {"scale": sc, "resample": rs} for n, sc, rs in self.text_attributes}
        if self.energy_weight:
            out["energy_weight"] = self.energy_weight
        if self.energy_stage:
            out["energy_stage"] = self.energy_stage
        if self.energy_speeds:
            out["energy_speeds"] = dict(self.energy_speeds)
            out["energy_span"] = list(self.energy_span)
            out["energy_band"] = self.energy_band
            out["energy_frames"] = self.energy_frames
        if self.stage_weight:
            out["stage_weight"] = self.stage_weight
            out["stage_from"] = self.stage_from
        if self.stage_facing:
            out["stage_facing"] = self.stage_facing
            out["stage_away"] = self.stage_away
        if self.text_floor:
            out["text_floor"] = self.text_floor
        if self.text_floor_weight:
            out["text_floor_weight"] = self.text_floor_weight
        if self.text_floor_frames != GuidanceConfig.text_floor_frames:
            out["text_floor_frames"] = self.text_floor_frames
        if self.text_floor_attributes:
            out["text_floor_attributes"] = list(self.text_floor_attributes)
        if self.text_speed_neutral:
            out["text_speed_neutral"] = list(self.text_speed_neutral)
        if self.text_speed_one_sided:
            out["text_speed_one_sided"] = list(self.text_speed_one_sided)
        if self.text_side_floors:
            out["text_side_floors"] = dict(self.text_side_floors)
        if self.text_side_scales:
            out["text_side_scales"] = dict(self.text_side_scales)
        if self.text_side_logp:
            out["text_side_logp"] = dict(self.text_side_logp)
        if self.text_side_targets:
            out["text_side_targets"] = {k: [t, b] for k, t, b in self.text_side_targets}
        if self.text_target_frames != GuidanceConfig.text_target_frames:
            out["text_target_frames"] = self.text_target_frames
        if self.text_speed_ceilings:
            out["text_speed_ceilings"] = dict(self.text_speed_ceilings)
            out["text_ceiling_weight"] = self.text_ceiling_weight
            out["text_ceiling_band"] = self.text_ceiling_band
            if self.text_ceiling_attributes:
                out["text_ceiling_attributes"] = list(self.text_ceiling_attributes)
        if self.text_ground_weight > 0:
            out["text_ground_weight"] = self.text_ground_weight
            out["text_ground_m"] = self.text_ground_m
            if self.text_ground_attributes:
                out["text_ground_attributes"] = list(self.text_ground_attributes)
        return out

    def energy_weight_at(self, stage_strength: float, facing_strength: float = 0.0) -> float:
        """The energy term's weight for a performer the stage term steers with strength ``stage_strength`` (0: not
        out on the stage) and its facing part with ``facing_strength`` (0: within its budget of frames facing away):
        ``energy_weight`` plus ``energy_stage`` of the stage term's whole weight, both parts (see ``energy_stage``)."""
        if self.energy_weight <= 0:
            return 0.0
        stage = (self.stage_weight * max(0.0, float(stage_strength))
                 + self.stage_facing * max(0.0, float(facing_strength)))
        return self.energy_weight + self.energy_stage * stage

    @property
    def energy_feedback(self) -> bool:
        """Whether the energy term steers toward a target speed (``energy_speeds``) rather than by ``2 e - 1``."""
        return self.energy_weight > 0 and bool(self.energy_speeds)

    def energy_speed(self, level: float | None, genre: str | None) -> float:
        """The target speed (m/s) of a performer at energy ``level`` dancing ``genre`` (``energy_speeds``; 0: none,
        when the feedback is off or the level unset)."""
        if level is None or not self.energy_feedback:
            return 0.0
        refs = dict(self.energy_speeds)
        ref = refs.get(genre or "", refs.get("*"))
        if ref is None:
            ref = float(np.mean(list(refs.values())))
        lo, hi = self.energy_span
        return float(ref) * (lo + (hi - lo) * min(1.0, max(0.0, float(level))))

    @property
    def ceiling_on(self) -> bool:
        """Whether the speed ceiling (``text_speed_ceilings``) can steer at all."""
        return self.text_ceiling_weight > 0 and bool(self.text_speed_ceilings)

    def speed_ceiling(self, genre: str | None) -> float:
        """The speed ceiling (m/s; ``text_speed_ceilings``) of a performer dancing ``genre`` (0: none)."""
        if not self.ceiling_on:
            return 0.0
        refs = dict(self.text_speed_ceilings)
        return float(refs.get(genre or "", refs.get("*", 0.0)))

    def ceiling_for(self, targets: tuple[tuple[int, float], ...]) -> bool:
        """Whether the speed ceiling applies to a performer with these targets: some text target (one that
        ``text_ceiling_attributes`` names, when it names any), none for speed or energy."""
        speed = (ATTRIBUTE_COLUMNS["speed"], ENERGY_COLUMN)
        if not (self.ceiling_on and targets) or any(c in speed for c, _ in targets):
            return False
        return _names_some(self.text_ceiling_attributes, targets)

    def ground_for(self, targets: tuple[tuple[int, float], ...]) -> bool:
        """Whether the ground term applies to a performer with these targets: some text target (one that
        ``text_ground_attributes`` names, when it names any)."""
        if self.text_ground_weight <= 0 or not any(c != ENERGY_COLUMN for c, _ in targets):
            return False
        return _names_some(self.text_ground_attributes, targets)

    def floor_for(self, targets: tuple[tuple[int, float], ...]) -> float:
        """The speed floor (m/s) of a performer with these targets: the highest ``text_side_floors`` of its targets'
        sides, ``text_floor`` when none is named."""
        named = dict(self.text_side_floors)
        return max((named[k] for c, d in targets if c != ENERGY_COLUMN and (k := _side_key(c, d)) in named),
                   default=self.text_floor)

    def floor_on(self, targets: tuple[tuple[int, float], ...]) -> bool:
        """Whether the speed floor (``text_floor``) steers a performer with these targets: the text term and the
        floor are on, the performer has a text target, and nothing it asks for is calm (speed "low", energy < 0.5)."""
        if not (self.text_on and self.text_floor > 0 and self.text_floor_weight > 0):
            return False
        calm = any(c in (ATTRIBUTE_COLUMNS["speed"], ENERGY_COLUMN) and d < 0 for c, d in targets)
        if calm:
            return False
        return _names_some(self.text_floor_attributes, targets)

    def side_target(self, column: int, direction: float) -> tuple[float, float] | None:
        """The ``text_side_targets`` (target, band) of a target (attribute column, direction), None when its side is
        not named."""
        if column == ENERGY_COLUMN or not self.text_side_targets:
            return None
        key = _side_key(column, direction)
        for k, target, band in self.text_side_targets:
            if k == key:
                return target, band
        return None

    def speed_neutral(self, column: int, direction: float) -> bool:
        """Whether the text term ranks this target (attribute column, direction) speed-neutrally
        (``text_speed_neutral``)."""
        return (column, 1.0 if direction > 0 else -1.0) in _sides(self.text_speed_neutral)

    def one_sided(self, column: int, direction: float) -> bool:
        """Whether a speed-neutral target's residual is one-sided (``text_speed_one_sided``; see
        :func:`speed_residual`)."""
        return (column, 1.0 if direction > 0 else -1.0) in _sides(self.text_speed_one_sided)


def _names_some(names: tuple[str, ...], targets: tuple[tuple[int, float], ...]) -> bool:
    """Whether ``names`` (``text_floor_attributes``-style: "travel", "travel:high") name the side of one of
    ``targets``; empty names name every target."""
    if not names:
        return True
    named = _sides(names)
    return any((c, 1.0 if d > 0 else -1.0) in named for c, d in targets)


def _sides(names: tuple[str, ...]) -> set[tuple[int, float]]:
    """(attribute column, direction) pairs of names "arm" (both directions), "arm:low" (-1) or "arm:high" (+1)."""
    out: set[tuple[int, float]] = set()
    for n in names:
        name, _, side = n.partition(":")
        out |= {(ATTRIBUTE_COLUMNS[name], d) for d in ((-1.0,) if side == "low" else (1.0,) if side == "high"
                                                         else (-1.0, 1.0))}
    return out


def _side_key(column: int, direction: float) -> str:
    """The card's name of one side of an attribute column ("travel:high")."""
    name = next(n for n, c in ATTRIBUTE_COLUMNS.items() if c == column)
    return f"{name}:{'high' if direction > 0 else 'low'}"


def _side_targets(block: Any) -> tuple[tuple[str, float, float], ...]:
    """The card's ``text_side_targets`` object ({"travel:high": [target, band]}) as ``GuidanceConfig`` holds it."""
    if not isinstance(block, dict) or not all(
            isinstance(k, str) and isinstance(v, list | tuple) and len(v) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v) for k, v in block.items()):
        raise ValueError(f"beat guidance text_side_targets must map NAME:low / NAME:high to [target, band], "
                         f"got {block!r}")
    return tuple((k, float(v[0]), float(v[1])) for k, v in block.items())


def _names(block: Any, key: str) -> tuple[str, ...]:
    """The card's list of attribute names ``key`` (``text_floor_attributes``, ``text_speed_neutral``) as
    ``GuidanceConfig`` holds it."""
    if not isinstance(block, list) or not all(isinstance(n, str) for n in block):
        raise ValueError(f"beat guidance {key} must be a list of attribute names, got {block!r}")
    return tuple(block)


def _energy_speeds(block: Any, key: str = "energy_speeds") -> tuple[tuple[str, float], ...]:
    """The card's ``energy_speeds`` (or ``key``'s) object ({"salsa": m/s, "*": m/s}) as ``GuidanceConfig`` holds it."""
    if not isinstance(block, dict) or not all(isinstance(k, str) and isinstance(v, int | float)
                                              and not isinstance(v, bool) for k, v in block.items()):
        raise ValueError(f"beat guidance {key} must map genre names (or \"*\") to speeds, got {block!r}")
    return tuple((k, float(v)) for k, v in block.items())


def _energy_span(block: Any) -> tuple[float, float]:
    """The card's ``energy_span`` ([lo, hi]) as ``GuidanceConfig`` holds it."""
    if not (isinstance(block, list | tuple) and len(block) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in block)):
        raise ValueError(f"beat guidance energy_span must be [lo, hi], got {block!r}")
    return float(block[0]), float(block[1])


def _side_scales(block: Any, key: str = "text_side_scales") -> tuple[tuple[str, float], ...]:
    """The card's ``text_side_scales`` (or ``text_side_logp``) object ({"arm:high": number}) as ``GuidanceConfig``
    holds it."""
    if not isinstance(block, dict) or not all(isinstance(k, str) and isinstance(v, int | float)
                                              and not isinstance(v, bool) for k, v in block.items()):
        raise ValueError(f"beat guidance {key} must map NAME:low / NAME:high to numbers, got {block!r}")
    return tuple((k, float(v)) for k, v in block.items())


def _text_attributes(block: Any) -> tuple[tuple[str, float, bool], ...]:
    """The card's ``text_attributes`` object ({name: {"scale": s, "resample": b}}) as ``GuidanceConfig`` holds it."""
    if block is None:
        return ()
    if not isinstance(block, dict) or not all(isinstance(v, dict) and set(v) <= {"scale", "resample"}
                                              for v in block.values()):
        raise ValueError(f"beat guidance text_attributes must map attribute names to {{\"scale\": number, "
                         f"\"resample\": true/false}}, got {block!r}")
    out = []
    for name, v in block.items():
        scale = v.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise ValueError(f"beat guidance text_attributes.{name}.scale must be a number, got {scale!r}")
        out.append((str(name), float(scale), v.get("resample", True)))
    return tuple(out)


#: The stage term's score per candidate is its travel towards the centre plus this share of its travel speed (m/s):
#: 0 would rank a draw standing still above every draw moving sideways or away, 1 a draw moving straight away level
#: with one standing still (measured, session 10: 0 lowered the kinetic diversity, 1 raised it and the skating).
STAGE_MOTION = 0.5

#: The facing part of the stage term scores a candidate frame by the cosine of its facing from the front, at most
#: this (45 deg, the audience measure's cone): every facing within the cone scores alike, so a dancer facing the front
#: is not held to it more tightly than the measure asks (the plain cosine also ranked the draws within the cone:
#: measured on 24 dances, skating +4 % against +0 %, FID_k 25.6 against 24.4).
STAGE_FACING_COS = math.cos(math.radians(45.0))

#: Candidate selection modes of :class:`GuidanceConfig` (``select``).
SELECTS = ("argmax", "sample")

OFF = GuidanceConfig(candidates=1, weight=0.0)


def beat_frames(cond_row: np.ndarray) -> list[int]:
    """Frames (0..3) of a token on which the predicted beat falls, from its phase (sin, cos) entries."""
    sc = np.asarray(cond_row)[-2 * DOWN :].reshape(DOWN, 2)
    ph = np.mod(np.arctan2(sc[:, 0], sc[:, 1]) / (2 * np.pi), 1.0)  # [4] phase of each frame
    step = float(np.mod(np.diff(ph), 1.0).mean())  # phase advance per frame
    if step <= 0.0:
        return []  # no tempo belief (constant phase)
    # The beat falls within half a frame of frame k when the phase is within half a step of 0.
    return [k for k in range(DOWN) if min(ph[k], 1.0 - ph[k]) <= step / 2]


class GuideState:
    """One performer's guidance memory: predicted beats (frame indices) and the last committed frames.

    The committed frames live in buffers allocated once (``history`` frames, newest last) and are shifted in
    place on each commit, which runs for every performer on every decode step.
    """

    def __init__(self, cfg: GuidanceConfig, dim_up: int, dim_down: int) -> None:
        self.cfg = cfg
        self.beats: list[int] = []
        # ``history`` frames, or the speed floor's window when that is longer (its frames: :attr:`floor_frames`)
        keep = max(cfg.history, cfg.text_floor_frames if cfg.text_floor > 0 and cfg.text_floor_weight > 0 else 0,
                   cfg.energy_frames if cfg.energy_feedback else 0,  # and the energy feedback's window
                   cfg.text_target_frames if cfg.text_side_targets or cfg.ceiling_on or cfg.text_ground_weight > 0
                   else 0)  # text targets, ceiling, ground
        self._up = np.zeros((keep, dim_up), np.float32)
        self._down = np.zeros((keep, dim_down), np.float32)
        self._filled = 0
        self.frames = 0  # frames committed so far (the next token starts here)
        # the way to the stage centre in the model's own frame (unit [2]) and how far out (0: the term is off);
        # set by the staging after each step (:meth:`set_stage`), not part of :meth:`state` (it sets it again)
        self.stage_dir = np.zeros(2)
        self.stage_strength = 0.0
        # the front in the model's own frame (yaw from +Z towards +X) and how far over its budget of frames facing
        # away the performer is (0: the facing part is off); set with the above
        self.front_yaw = 0.0
        self.facing_strength = 0.0
        # the energy feedback's target speed (m/s; 0: none), set by the generator before each token
        # (``GuidanceConfig.energy_speed``), not part of :meth:`state`
        self.energy_speed = 0.0
        # the speed ceiling of the performer's genre (m/s; 0: none; ``GuidanceConfig.text_speed_ceilings``), set by the
        # generator before each token, not part of :meth:`state`
        self.speed_ceiling = 0.0

    @property
    def stage_on(self) -> bool:
        """Whether the stage term steers this performer's next token (out on the stage, or facing away too often)."""
        return self.stage_strength > 0 or self.facing_strength > 0

    def set_stage(self, rel_xz: np.ndarray | None, theta: float = 0.0, radius: float = 1.0, front: float = 0.0,
                  away: float = 0.0) -> None:
        """Where the staging has the performer: ``rel_xz`` its root less the stage centre in staged coordinates,
        ``theta`` the staging's yaw of the model's frame (staged = the model's turned by ``theta``, plus an offset),
        ``radius`` the stage radius, ``front`` the front's yaw (staged), ``away`` the recent share of its frames
        facing away from the front; None: not staged (the stage term is off)."""
        self.stage_strength = 0.0
        self.facing_strength = 0.0
        if rel_xz is None:
            return
        if self.cfg.stage_facing > 0:
            self.front_yaw = float(front) - float(theta)
            b = self.cfg.stage_away
            self.facing_strength = float(np.clip((float(away) - b) / b, 0.0, 2.0))
        if self.cfg.stage_weight <= 0:
            return
        rel = np.asarray(rel_xz, np.float64)[:2]
        dist = float(np.hypot(rel[0], rel[1]))
        r0 = self.cfg.stage_from * radius
        self.stage_strength = float(np.clip((dist - r0) / max(radius - r0, 1e-6), 0.0, 2.0))
        if self.stage_strength > 0:  # the way home, turned back into the model's frame (raw = staged turned -theta)
            c, s_ = math.cos(-theta), math.sin(-theta)
            u = -rel / dist
            self.stage_dir = np.array([c * u[0] + s_ * u[1], c * u[1] - s_ * u[0]])

    @property
    def hist_up(self) -> np.ndarray:
        """[H, Du] the last committed upper frames (H <= history), oldest first."""
        return self._up[len(self._up) - min(self._filled, self.cfg.history) :]

    @property
    def hist_down(self) -> np.ndarray:
        """[H, Dl] the last committed lower frames, oldest first."""
        return self._down[len(self._down) - min(self._filled, self.cfg.history) :]

    @property
    def floor_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(upper, lower) of the last committed frames the speed floor reads (<= ``text_floor_frames``)."""
        n = min(self._filled, self.cfg.text_floor_frames, len(self._up))
        return self._up[len(self._up) - n :], self._down[len(self._down) - n :]

    @property
    def energy_window(self) -> tuple[np.ndarray, np.ndarray]:
        """(upper, lower) of the last committed frames the energy feedback reads (<= ``energy_frames``)."""
        n = min(self._filled, self.cfg.energy_frames, len(self._up))
        return self._up[len(self._up) - n :], self._down[len(self._down) - n :]

    @property
    def target_window(self) -> tuple[np.ndarray, np.ndarray]:
        """(upper, lower) of the last committed frames the text targets read (<= ``text_target_frames``)."""
        n = min(self._filled, self.cfg.text_target_frames, len(self._up))
        return self._up[len(self._up) - n :], self._down[len(self._down) - n :]

    def reset(self) -> None:
        self.beats.clear()
        self._filled = 0
        self.frames = 0

    def forget_frames(self) -> None:
        """Forget the committed frames (a decoder restart: the next frames do not continue them); beats stay."""
        self._filled = 0

    def state(self) -> dict[str, np.ndarray]:
        """This memory as arrays of fixed shapes (to snapshot for exact rewinds; :meth:`set_state` puts it back).
        The kept beats lie within ``back + DOWN`` frames, so they fit a fixed array."""
        beats = np.full(self.cfg.back + DOWN, -1, np.int64)
        beats[: len(self.beats)] = self.beats
        return {"guide_up": self._up.copy(), "guide_down": self._down.copy(), "guide_beats": beats,
                "guide_counts": np.array([len(self.beats), self._filled, self.frames], np.int64)}

    def set_state(self, values: Mapping[str, Any]) -> None:
        """Put back a :meth:`state` (arrays of this performer)."""
        n, self._filled, self.frames = (int(v) for v in values["guide_counts"])
        self._up[:] = np.asarray(values["guide_up"])
        self._down[:] = np.asarray(values["guide_down"])
        self.beats = [int(b) for b in np.asarray(values["guide_beats"])[:n]]

    def observe(self, cond_row: np.ndarray) -> list[int]:
        """Record the next token's predicted beats; return those that should steer it (absolute frames)."""
        f0 = self.frames
        self.beats.extend(f0 + k for k in beat_frames(cond_row))
        lo = f0 - self.cfg.back
        self.beats = [b for b in self.beats if b >= lo]
        return [b for b in self.beats if b <= f0 + DOWN - 1]

    def commit(self, upper: np.ndarray, lower: np.ndarray) -> None:
        """The committed token's raw decoded frames (upper [n, Du], lower [n, Dl])."""
        h, n = len(self._up), min(len(upper), len(self._up))
        self._up[: h - n] = self._up[n:]
        self._down[: h - n] = self._down[n:]
        self._up[h - n :] = upper[len(upper) - n :]
        self._down[h - n :] = lower[len(lower) - n :]
        self._filled = min(h, self._filled + n)
        self.frames += len(upper)




class BeatGuide:
    """Scores candidate tokens of guided performers (see the module doc).

    ``foot_lock``: the generator locks the feet of the frames it outputs (``pose_repr.lock_feet``), so the text
    term measures its candidates' travel on their foot-locked root velocity, the travel that will be output.
    """

    def __init__(self, cfg: GuidanceConfig, foot_lock: bool = False) -> None:
        self.cfg = cfg
        self.foot_lock = foot_lock
        self.fk = VectorFK()
        # the contact points (``pose_repr.CONTACT_POINTS``: a foot joint, or its toe end site) in the FK's positions
        self.foot_points = [self.fk.names.index(name + "_toe" if toe else name) for name, toe in CONTACT_POINTS]
        self._hips = (self.fk.names.index("rThigh"), self.fk.names.index("lThigh"))  # the facing's hip line

    def new_state(self, dim_up: int, dim_down: int) -> GuideState:
        return GuideState(self.cfg, dim_up, dim_down)

    @torch.inference_mode()
    def _positions(self, up: np.ndarray, down: np.ndarray) -> np.ndarray:
        """Root-relative joint positions [..., T, K, 3] of model vectors."""
        return self.fk(torch.from_numpy(np.ascontiguousarray(up, np.float32)),
                       torch.from_numpy(np.ascontiguousarray(down, np.float32))).numpy()

    def _speed(self, pos: np.ndarray, root_v: np.ndarray, hist: np.ndarray | None, hist_v: np.ndarray | None
               ) -> np.ndarray:
        """Smoothed mean joint speed (m/s), [C, n - 1], column i between window frames i and i + 1.

        pos [C, 4, K, 3] and root_v [C, 4, 2] of the candidates; hist [H, K, 3], hist_v [H, 2] of the
        committed frames (None: no history yet).
        """
        c = len(pos)
        if hist is not None and hist_v is not None and len(hist):
            pos = np.concatenate([np.broadcast_to(hist, (c, *hist.shape)), pos], axis=1)
            root_v = np.concatenate([np.broadcast_to(hist_v, (c, *hist_v.shape)), root_v], axis=1)
        step = pos[:, 1:] - pos[:, :-1]
        step[..., 0] += root_v[:, 1:, None, 0] / _FPS  # root velocity x, z (m/s) -> world displacement
        step[..., 2] += root_v[:, 1:, None, 1] / _FPS
        speed = np.linalg.norm(step, axis=-1).mean(-1) * _FPS  # [C, n - 1]
        if self.cfg.sigma > 0 and speed.shape[1] > 1:
            speed = gaussian_filter1d(speed, self.cfg.sigma, axis=1, mode="nearest")
        return speed

    def _hits(self, speed: np.ndarray, first: int, beats: list[int]) -> np.ndarray:
        """sum over ``beats`` of exp(-d^2 / (2 tol^2)) per candidate row of ``speed``; ``first`` = absolute
        frame of window frame 0. A curve still falling at the window's end counts as a minimum there."""
        n = speed.shape[1]
        out = np.zeros(len(speed))
        if n < 2:
            return out
        s = speed
        interior = np.zeros_like(s, dtype=bool)
        interior[:, 1:-1] = (s[:, 1:-1] <= s[:, :-2]) & (s[:, 1:-1] <= s[:, 2:])
        interior[:, -1] = s[:, -1] < s[:, -2]
        cols = np.arange(n, dtype=np.float64)
        tol2 = 2.0 * self.cfg.tolerance**2
        for b in beats:
            x = b - first - 0.5  # column position of frame b
            d = np.where(interior, np.abs(cols[None] - x), np.inf).min(axis=1)
            out += np.exp(-(d**2) / tol2)
        return out

    def _candidate_positions(self, states: list[GuideState], cand_up: np.ndarray, cand_down: np.ndarray
                             ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Positions [P, C, 4, K, 3] of P performers' candidates (cand_* [P, C, 4, D]) and of each performer's
        committed history frames ([H, K, 3] or None).

        One forward-kinematics call in all (every candidate frame and every history frame together), whatever
        P is: at batch 1 the call's fixed overhead is most of its cost.
        """
        p_, c_ = cand_up.shape[:2]
        cu = cand_up.reshape(-1, cand_up.shape[-1])  # [P*C*4, Du]
        cd = cand_down.reshape(-1, cand_down.shape[-1])
        lens = [len(st.hist_up) for st in states]
        if sum(lens):
            cu = np.concatenate([cu, *(st.hist_up for st in states)])
            cd = np.concatenate([cd, *(st.hist_down for st in states)])
        flat = self._positions(cu, cd)  # [P*C*4 + sum H, K, 3]
        n_cand = p_ * c_ * cand_up.shape[2]
        pos = flat[:n_cand].reshape(p_, c_, cand_up.shape[2], *flat.shape[1:])  # [P, C, 4, K, 3]
        hists: list[np.ndarray | None] = []
        at = n_cand
        for n in lens:
            hists.append(flat[at : at + n] if n else None)
            at += n
        return pos, hists

    def _hit_scores(self, states: list[GuideState], beats: list[list[int]], pos: np.ndarray,
                    hists: list[np.ndarray | None], cand_down: np.ndarray) -> np.ndarray:
        out = np.zeros(pos.shape[:2])
        for i, st in enumerate(states):
            if not beats[i]:
                continue
            h = hists[i]
            speed = self._speed(pos[i], cand_down[i][:, :, [0, 2]], h, st.hist_down[:, [0, 2]])
            out[i] = self._hits(speed, st.frames - (0 if h is None else len(h)), beats[i])
        return out

    def beat_scores_batch(self, states: list[GuideState], beats: list[list[int]], cand_up: np.ndarray,
                          cand_down: np.ndarray) -> np.ndarray:
        """Hit scores [P, C] for P performers' candidates (cand_* [P, C, 4, D] raw decoded frames)."""
        pos, hists = self._candidate_positions(states, cand_up, cand_down)
        return self._hit_scores(states, beats, pos, hists, cand_down)

    def attribute_values(self, state: GuideState, pos: np.ndarray, hist: np.ndarray | None, cand_down: np.ndarray
                         ) -> np.ndarray:
        """The caption attributes [C, 5] (speed, turn, travel, arm, steps; :func:`engine.models.motion_measures.
        frame_measures`) of one performer's candidates over their four frames: pos [C, 4, K, 3] root-relative,
        cand_down [C, 4, Dl]; the last committed frame (``hist``'s newest, when there is one) gives the rates
        of the first candidate frame."""
        n = pos.shape[1]
        if hist is not None and len(hist):
            pos = np.concatenate([np.broadcast_to(hist[-1:][None], (len(pos), 1, *hist.shape[1:])), pos], axis=1)
            cand_down = np.concatenate([np.broadcast_to(state.hist_down[-1:], (len(pos), 1, cand_down.shape[-1])),
                                        cand_down], axis=1)
        first = pos.shape[1] - n
        # (with the last committed frame before the first, as ``_frames`` does)
        world = self._travelled(np.array(pos, np.float64), cand_down)
        # All candidates in one call; the sums taken as frame_measures' running sums are (bit for bit).
        cum = np.cumsum(per_frame_measures(world, np.asarray(cand_down, np.float64), _FPS), axis=1)  # [C, F, 5]
        return (cum[:, -1] - (cum[:, first - 1] if first else 0.0)) / n

    def text_scores_batch(self, states: list[GuideState], targets: list[tuple[tuple[int, float], ...]],
                          pos: np.ndarray, hists: list[np.ndarray | None], cand_down: np.ndarray) -> np.ndarray:
        """Attribute scores [P, C]: per target (attribute column, direction +-1), the candidates' attribute
        standardised over the performer's candidates, times the direction and the attribute's weight
        (:meth:`GuidanceConfig.text_scale`), summed (0 for no targets). An attribute named in ``text_speed_neutral``
        is first made neutral to the candidates' speed (:func:`speed_residual`)."""
        out = np.zeros(pos.shape[:2])
        for i, st in enumerate(states):
            if not targets[i]:
                continue
            vals = self.attribute_values(st, pos[i], hists[i], cand_down[i])
            done: np.ndarray | None = None
            win: np.ndarray | None = None  # the committed window's joint positions, computed once for the two below
            for col, sign in targets[i]:
                # the energy term keeps its share of the stage term's weight while that steers (``energy_stage``)
                w = (self.cfg.energy_weight_at(st.stage_strength, st.facing_strength) if col == ENERGY_COLUMN
                     else self.cfg.text_side_weight(col, sign))
                if (tb := self.cfg.side_target(col, sign)) is not None:  # a side with a target: steered while short
                    if done is None:
                        win = self._window_positions(st)
                        done = self.committed_attributes(st, win)
                    w *= self.target_gap(tb, sign, None if done is None else float(done[col]))
                if col == ENERGY_COLUMN and st.energy_speed > 0:  # the feedback: toward the level's target speed
                    sign = self.energy_direction(st)
                v = vals[:, ATTRIBUTE_COLUMNS["speed"] if col == ENERGY_COLUMN else col]
                if col != ENERGY_COLUMN and self.cfg.speed_neutral(col, sign):
                    v = speed_residual(v, vals[:, ATTRIBUTE_COLUMNS["speed"]],
                                       sign if self.cfg.one_sided(col, sign) else 0.0)
                sd = float(v.std())
                if sd > 1e-9 and w > 0:
                    out[i] += w * sign * (v - v.mean()) / sd
            if self.cfg.floor_on(targets[i]):
                out[i] -= self.floor_penalty(st, vals[:, ATTRIBUTE_COLUMNS["speed"]], self.cfg.floor_for(targets[i]))
            if (st.speed_ceiling > 0 and self.cfg.ceiling_for(targets[i])
                    and (g := self.ceiling_gap(st, win)) > 0):
                v = vals[:, ATTRIBUTE_COLUMNS["speed"]]
                sd = float(v.std())
                if sd > 1e-9:  # over the genre's ceiling: the calmer draws
                    out[i] -= self.cfg.text_ceiling_weight * g * (v - v.mean()) / sd
            if self.cfg.ground_for(targets[i]):
                if win is None:
                    win = self._window_positions(st)
                if win is not None and (g := self.hover_gap(win)) > 0:
                    v = pos[i][:, :, self.foot_points, 1].min(axis=-1).mean(axis=-1)  # [C] lowest contact point
                    sd = float(v.std())
                    if sd > 1e-9:  # hovering: the draws with a foot nearer the floor
                        out[i] -= self.cfg.text_ground_weight * g * (v - v.mean()) / sd
        return out

    def hover_gap(self, win: np.ndarray) -> float:
        """The share (0..1) of the ground term's weight: how far the committed frames' (joint positions ``win``
        [n, K, 3], :meth:`_window_positions`) lowest contact point, averaged over them, is above
        ``text_ground_m``, over ``text_ground_m``."""
        h = float(np.asarray(win)[:, self.foot_points, 1].min(axis=-1).mean())
        m = self.cfg.text_ground_m
        return float(np.clip((h - m) / m, 0.0, 1.0))

    def ceiling_gap(self, state: GuideState, win: np.ndarray | None = None) -> float:
        """The share (0..1) of the speed ceiling's weight (``GuidanceConfig.text_speed_ceilings``): how far the mean
        root-relative joint speed of the performer's last ``text_target_frames`` committed frames is over its
        ceiling, over ``text_ceiling_band`` of the ceiling (0 before two frames are committed). ``win``: those
        frames' joint positions (:meth:`_window_positions`) when already computed."""
        up, down = state.target_window
        if len(up) < 2 or state.speed_ceiling <= 0:
            return 0.0
        v = self.window_speed(up, down, win)
        c = state.speed_ceiling
        return float(np.clip((v - c) / (self.cfg.text_ceiling_band * c), 0.0, 1.0))

    def stage_scores(self, states: list[GuideState], pos: np.ndarray, hists: list[np.ndarray | None],
                     cand_down: np.ndarray) -> np.ndarray:
        """Stage scores [P, C]: per performer out on the stage (:meth:`GuideState.set_stage`), its candidates'
        travel towards the centre standardised over them, times ``stage_weight`` and how far out it is (0 for the
        others). Travel = the mean root velocity of the four frames, foot-locked as the generator will lock it
        (the last committed frame before the first, as :meth:`attribute_values`)."""
        out = np.zeros(pos.shape[:2])
        for i, st in enumerate(states):
            if st.facing_strength > 0:  # the facing part: the candidates' hips facing the front (mean cosine)
                hips = pos[i][:, :, self._hips[1]] - pos[i][:, :, self._hips[0]]  # [C, 4, 3] right -> left hip
                cos = np.cos(np.arctan2(-hips[..., 2], hips[..., 0]) - st.front_yaw)
                cos = np.minimum(cos, STAGE_FACING_COS).mean(axis=1)  # every facing within the cone is as good
                sd = float(cos.std())
                if sd > 1e-9:
                    out[i] += self.cfg.stage_facing * st.facing_strength * (cos - cos.mean()) / sd
            if st.stage_strength <= 0:
                continue
            p_i, d_i, h = pos[i], np.asarray(cand_down[i], np.float64), hists[i]
            if h is not None and len(h):
                p_i = np.concatenate([np.broadcast_to(h[-1:][None], (len(p_i), 1, *h.shape[1:])), p_i], axis=1)
                d_i = np.concatenate([np.broadcast_to(st.hist_down[-1:], (len(d_i), 1, d_i.shape[-1])), d_i], axis=1)
            v = d_i[:, :, [0, 2]]
            if self.foot_lock:
                v = locked_root_velocity(p_i[:, :, self.foot_points][..., [0, 2]], d_i[:, :, CONTACT_SLICE], v, _FPS)
            v = v[:, -pos.shape[2]:]
            # travel towards the centre, plus STAGE_MOTION of the travel's speed: a draw standing still scores no
            # better than one moving across the way home (without it the term favoured still draws: less diverse)
            home = (v @ st.stage_dir).mean(axis=1) + STAGE_MOTION * np.linalg.norm(v, axis=-1).mean(axis=1)
            sd = float(home.std())
            if sd > 1e-9:
                out[i] += self.cfg.stage_weight * st.stage_strength * (home - home.mean()) / sd
        return out

    def committed_attributes(self, state: GuideState, win: np.ndarray | None = None) -> np.ndarray | None:
        """The caption attributes [5] (speed, turn, travel, arm, steps; as :meth:`attribute_values` measures them,
        the root foot-locked when the generator locks it) of the performer's last ``text_target_frames`` committed
        frames (None: fewer than 2). ``win``: those frames' joint positions (:meth:`_window_positions`) when already
        computed."""
        up, down = state.target_window
        if len(up) < 2:
            return None
        if win is None:
            win = self._positions(up, down)
        low = np.asarray(down, np.float64)[None]
        world = self._travelled(np.array(win, np.float64)[None], low)  # [1, n, K, 3]
        return per_frame_measures(world, low, _FPS)[0].mean(axis=0)

    def _travelled(self, world: np.ndarray, down: np.ndarray) -> np.ndarray:
        """Root-relative points ``world`` [C, F, K, 3] (float64, moved in place and returned) with the root's
        travel added: the lower vectors' (``down`` [C, F, Dl]) root velocity (x, z, m/s) integrated from the first
        frame as in ``_speed``, foot-locked as the generator will lock it."""
        root_v = np.asarray(down[:, :, [0, 2]], np.float64)
        if self.foot_lock:
            root_v = locked_root_velocity(world[:, :, self.foot_points][..., [0, 2]], down[:, :, CONTACT_SLICE],
                                          root_v, _FPS)
        disp = np.zeros((world.shape[0], world.shape[1], 2))
        disp[:, 1:] = np.cumsum(root_v[:, 1:], axis=1) / _FPS
        world[..., 0] += disp[:, :, None, 0]
        world[..., 2] += disp[:, :, None, 1]
        return world

    @staticmethod
    def target_gap(target_band: tuple[float, float], direction: float, value: float | None) -> float:
        """The share (0..1) of a targeted side's weight (``text_side_targets``): how far the committed frames'
        attribute ``value`` falls short of the target in the asked direction, over the band (1 when nothing is
        committed yet)."""
        if value is None:
            return 1.0
        target, band = target_band
        return float(np.clip((target - value) * (1.0 if direction > 0 else -1.0) / band, 0.0, 1.0))

    def committed_speed(self, state: GuideState) -> float | None:
        """Mean root-relative joint speed (m/s) of the frames the speed floor reads (None: fewer than 2)."""
        up, down = state.floor_frames
        if len(up) < 2:
            return None
        return self.window_speed(up, down)

    def _window_positions(self, state: GuideState) -> np.ndarray | None:
        """Joint positions of the performer's last ``text_target_frames`` committed frames (None: fewer than 2)."""
        up, down = state.target_window
        return self._positions(up, down) if len(up) >= 2 else None

    def window_speed(self, up: np.ndarray, down: np.ndarray, pos: np.ndarray | None = None) -> float:
        """Mean root-relative joint speed (m/s) of committed frames (model vectors ``up`` / ``down``, at least 2;
        ``pos``: their joint positions when already computed): the speed floor's, the energy feedback's and the
        speed ceiling's measure."""
        pos = np.array(self._positions(up, down) if pos is None else pos, np.float64)
        pos[..., [0, 2]] -= pos[:, :1, [0, 2]]
        return float(np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean() * _FPS)

    def energy_direction(self, state: GuideState) -> float:
        """The energy feedback's direction (-1..1; ``GuidanceConfig.energy_speeds``): the performer's target speed
        less the mean root-relative joint speed of its last ``energy_frames`` committed frames, over
        ``energy_band`` of the target (0 before two frames are committed)."""
        up, down = state.energy_window
        if len(up) < 2 or state.energy_speed <= 0:
            return 0.0
        v = self.window_speed(up, down)
        t = state.energy_speed
        return float(np.clip((t - v) / (self.cfg.energy_band * t), -1.0, 1.0))

    def floor_penalty(self, state: GuideState, cand_speed: np.ndarray, floor: float | None = None) -> np.ndarray:
        """The speed floor's penalty [C] (``GuidanceConfig.text_floor``, or ``floor`` m/s: a side's
        ``text_side_floors``) of candidates moving at ``cand_speed`` [C] (the speed column of
        :meth:`attribute_values`): 0 unless the performer's committed frames move slower than the floor."""
        f = self.cfg.text_floor if floor is None else floor
        moving = self.committed_speed(state)
        if moving is not None and moving >= f:
            return np.zeros(len(cand_speed))
        return self.cfg.text_floor_weight * np.clip(1.0 - np.asarray(cand_speed, np.float64) / f, 0.0, None)

    def resamples(self, targets: tuple[tuple[int, float], ...]) -> bool:
        """Whether a performer with these text targets resamples its draws on tokens no beat steers (some named
        attribute resamples with a weight > 0, or a target's side is named in ``text_side_logp``; see
        :meth:`choose_batch`)."""
        return any((w > 0 and rs) or (self.cfg.side_logp(col, d) is not None and self.cfg.text_side_weight(col, d) > 0)
                   for (col, d), (w, rs) in ((t, self.cfg.text_scale(t[0])) for t in targets))

    def beat_scores(
        self, state: GuideState, beats: list[int], cand_up: np.ndarray, cand_down: np.ndarray
    ) -> np.ndarray:
        """Hit scores [C] of one performer's candidates (cand_* [C, 4, D])."""
        return self.beat_scores_batch([state], [beats], cand_up[None], cand_down[None])[0]

    def choose_batch(self, states: list[GuideState], beats: list[list[int]], cand_up: np.ndarray,
                     cand_down: np.ndarray, logp: np.ndarray,
                     targets: list[tuple[tuple[int, float], ...]] | None = None,
                     gumbel: np.ndarray | None = None, noise: list[np.ndarray | None] | None = None) -> list[int]:
        """The winning candidate pair of each performer (cand_* [P, C, 4, D], logp [P, C]); ``targets``: each
        performer's text attribute targets (:func:`steer_targets`; None or empty: no text term); ``gumbel``
        [P, C]: standard Gumbel noise, needed with ``select`` "sample" (it stands in for ``logp`` for the
        performers without a text term: see :class:`GuidanceConfig`); ``noise``: per performer None or [C]
        standard Gumbel draws (:func:`gumbel_noise`) for a texted performer on a token no beat steers, or for one
        the stage term alone steers (then it takes the candidate maximising ``stage + noise``). Every performer out on
        the stage adds its :meth:`stage_scores` (``stage_weight`` 0: nothing changes).

        A texted performer with beats to steer takes the candidate maximising ``logp + weight * hits + text``
        (``text``: :meth:`text_scores_batch`, weighted). A texted performer with noise (no beat) takes the one
        maximising ``text_logp * logp + text + noise`` (an energy-only performer: ``text + noise``): a draw from
        its candidates with odds
        ``p ** text_logp * exp(text_weight * z)``, i.e. the GPT's own draws resampled towards the asked attribute
        (importance resampling: the candidates are already draws from the GPT's distribution, so the arg-max of
        their log-probability, as before session 8, favours its most likely tokens and flattens the dance, which
        pulled every "high" prompt down; text_logp 0 and text_weight 0 is plain sampling).

        Pairs, not all pairings of C upper and C lower draws: the speed curve is dominated by the lower
        body and the root, so C x C pairings score about like C pairs (measured: 8 x 8 pairings gave BAS
        0.30 where 32 pairs gave 0.39) while the decode cost follows the number of rows.
        """
        pos, hists = self._candidate_positions(states, cand_up, cand_down)
        base = np.array(logp, np.float64)
        if self.cfg.select == "sample":
            if gumbel is None:
                raise ValueError('beat guidance select "sample" needs Gumbel noise')
            for i in range(len(states)):
                if targets is None or not self.cfg.steer_on or not targets[i]:
                    base[i] = gumbel[i]
        score = base + self.cfg.weight * self._hit_scores(states, beats, pos, hists, cand_down)
        if targets is not None and self.cfg.steer_on and any(targets):
            text = self.text_scores_batch(states, targets, pos, hists, cand_down)
            score = score + text
            for i, g in enumerate(noise or ()):
                if g is not None:  # an energy-only performer: exp(energy term) alone (0.5 -> plain sampling)
                    lw = self.cfg.resample_logp(targets[i])
                    score[i] = lw * np.asarray(logp[i], np.float64) + text[i] + g
        if (self.cfg.stage_weight > 0 or self.cfg.stage_facing > 0) and any(st.stage_on for st in states):
            stage = self.stage_scores(states, pos, hists, cand_down)
            for i, g in enumerate(noise or ()):  # steered by the stage alone: its draws resampled, exp(stage term)
                if g is not None and not (targets and targets[i]):
                    score[i] = g
            score = score + stage
        return [int(k) for k in np.argmax(score, axis=1)]

    def choose(self, state: GuideState, beats: list[int], cand_up: np.ndarray, cand_down: np.ndarray,
               logp: np.ndarray, targets: tuple[tuple[int, float], ...] = (), gumbel: np.ndarray | None = None,
               noise: np.ndarray | None = None) -> int:
        """:meth:`choose_batch` for one performer (cand_* [C, 4, D], logp [C], gumbel [C] or None, noise [C] or
        None)."""
        return self.choose_batch([state], [beats], cand_up[None], cand_down[None], np.asarray(logp)[None],
                                 [targets], None if gumbel is None else np.asarray(gumbel)[None], [noise])[0]


#: Column of each matched attribute in :func:`engine.models.motion_measures.frame_measures` (speed, turn, travel, arm,
#: steps).
ATTRIBUTE_COLUMNS: dict[str, int] = {"speed": 0, "turn": 1, "travel": 2, "arm": 3, "steps": 4}


def text_scale_key_ok(key: object) -> bool:
    """A key of ``sampling.text_guidance_attributes``: an attribute name ("arm") or one side of it ("travel:low")."""
    if not isinstance(key, str):
        return False
    name, colon, side = key.partition(":")
    return name in ATTRIBUTE_COLUMNS and (not colon or side in ("low", "high"))


#: The energy term's target column (:func:`energy_target`): the speed measure, weighted by ``energy_weight``.
ENERGY_COLUMN = len(ATTRIBUTE_COLUMNS)


def speed_residual(values: np.ndarray, speed: np.ndarray, direction: float = 0.0) -> np.ndarray:
    """``values`` [C] of candidates less their least-squares line in the candidates' ``speed`` [C]: the part of the
    attribute that speed does not explain, so that ranking by it neither favours the stiller draws (for a "low"
    target: "arms low", "stay in place" picked standing draws, which stalled the dance) nor the livelier ones (for a
    "high" target: "travel across the floor" danced 1.4x faster than the same dance without text). Unchanged when the
    candidates all move at one speed.

    ``direction`` (+1 "high", -1 "low"; 0: both sides, the default) makes it one-sided: only the candidates whose
    speed moves the plain value the asked way (``direction * fit > 0``: for "low" the slower ones, for "high" the
    faster ones) are corrected, the others keep their value, so that ranking by it favours neither the stiller nor
    the livelier draws (the two-sided residual, ranked for "low", favours a draw faster than the others that travels
    a little less than its speed predicts: ``text_speed_one_sided``)."""
    v = np.asarray(values, np.float64)
    ds = np.asarray(speed, np.float64) - float(np.mean(speed))
    var = float(ds @ ds)
    if var <= 1e-12:
        return v
    fit = float((v - v.mean()) @ ds) / var * ds
    if direction:
        fit = np.where(direction * fit > 0, fit, 0.0)
    return v - fit


def steer_targets(classes: Mapping[str, str]) -> tuple[tuple[int, float], ...]:
    """(attribute column, direction) of the attribute classes a text names (``PromptMatcher.classes``): +1 for
    "high", -1 for "low"; other classes (speed "mid") and attributes steer nothing."""
    out = []
    for attr, cls in classes.items():
        if attr in ATTRIBUTE_COLUMNS and cls in ("low", "high"):
            out.append((ATTRIBUTE_COLUMNS[attr], 1.0 if cls == "high" else -1.0))
    return tuple(out)


def energy_target(level: float | None, cfg: GuidanceConfig) -> tuple[tuple[int, float], ...]:
    """The energy term's target of a performer at energy ``level`` (None: unset): ``(ENERGY_COLUMN, 2 level - 1)``,
    nothing when the term is off or the level is 0.5 (the direction's sign and size: calmer below, livelier
    above, in proportion)."""
    if level is None or cfg.energy_weight <= 0:
        return ()
    d = 2.0 * float(level) - 1.0
    # with the feedback (``energy_speeds``) every level is steered, 0.5 too (the direction then comes from the
    # performer's speed against its target: :meth:`BeatGuide.energy_direction`)
    return ((ENERGY_COLUMN, d),) if d != 0.0 or cfg.energy_feedback else ()


def pack_candidates(cu: torch.Tensor, cd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """The distinct upper and the distinct lower candidate tokens, each to decode once.

    The upper and lower decoders are independent networks (``StreamingDecoder.peek_state`` runs them on
    their own rows), so decoding each distinct upper and each distinct lower token once serves every
    candidate pair. Draws from the GPT repeat tokens (32 draws hold about 9 distinct upper and 14 distinct
    lower tokens with the shipped model).

    Returns:
        (distinct upper [nu], distinct lower [nd], index of each candidate's upper in them [C], same lower [C]).
    """
    uu, iu = torch.unique(cu, return_inverse=True)
    ud, idn = torch.unique(cd, return_inverse=True)
    return uu, ud, iu.numpy(), idn.numpy()


def candidate_logp(logits_up: torch.Tensor, logits_down: torch.Tensor, cu: torch.Tensor, cd: torch.Tensor,
                   temperature: float) -> np.ndarray:
    """log p of candidate pairs under the tempered distributions (logits [V], candidates [C])."""
    t = max(float(temperature), 1e-6)
    lu = torch.log_softmax(logits_up.float() / t, -1)
    ld = torch.log_softmax(logits_down.float() / t, -1)
    return (lu[cu] + ld[cd]).numpy()


def gumbel_noise(n: int, generator: torch.Generator) -> np.ndarray:
    """``n`` standard Gumbel draws from ``generator`` (a performer's own stream), for ``select`` "sample":
    argmax of ``weight * hits + noise`` draws candidate k with probability proportional to ``exp(weight * hits_k)``;
    and for the text term's resampling (:meth:`BeatGuide.choose_batch`).
    """
    u = torch.rand(n, generator=generator, dtype=torch.float64).clamp_(1e-12, 1.0 - 1e-12)
    return (-torch.log(-torch.log(u))).numpy()

