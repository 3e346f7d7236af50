"""Couple measures: how far apart the partners stand and how close their hands come, generated against real.

For the held-out salsa takes (12, 13) and their music: the distance between the two roots on the floor and
the smallest of the four hand-to-hand distances, per frame; their distributions against the real couples'
(1-D Wasserstein distance), the share of frames in a hold (hands within :data:`HOLD_M`), the hand distance
during real holds, interpenetration (root distance below the real minimum), both partners' foot skating, and
the pair on stage (:func:`pair_on_stage`). Rows: real, the couple model as the live kind runs it (staged as a
pair), the same unstaged (``--no-staging``), the same follower without the run-time placement pull and distance
floor, an untrained follower
(random weights, with pull and floor: what the mechanism alone gives), and two solo dancers generated
independently by the leader GPT, started at the same placement. Written by ``bench/couple_bench.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.frames import MODEL_FPS
from engine.models.conditioning import sequence_conditions
from engine.models.couple import FLOOR_FRONT_M, FLOOR_SIDE_M, FLOOR_TURN_DEG
from engine.models.dance_model import DEFAULT_MODEL_DIR
from engine.models.follower import FollowerGPT, from_leader_frame, hip_yaw, load_follower, relative_position
from engine.models.pose_repr import Motion, motion_positions
from engine.models.protocol import MotionModel
from engine.models.staging import DEFAULT_STAGING, StagingConfig
from engine.runtime.assemble import ModelSpec, build_couple, gpt_generator
from engine.skeleton import rotations as R
from engine.train.cmu_data import load_split
from engine.train.dataset import TRAINED_GENRES, default_cache_dir, music_for_take

#: Hands closer than this (metres between the CMU hand joints, i.e. the wrists; the nearer of the four left/right
#: pairs) count as a hold: joined hands put the wrists about a hand's length apart (real takes 12/13: 30-39 % of
#: frames, median 0.29-0.33 m over all frames).
HOLD_M = 0.25
HANDS = ("rHand", "lHand")
#: The pair is visible from the front (neither partner behind the other) when the line between the roots is within
#: this of the stage's lateral axis.
VISIBLE_DEG = 45.0


def dance_window(hands: np.ndarray) -> slice:
    """The frames of a real take from its first hold to its last (hands within :data:`HOLD_M`; all frames when
    there is none): the couple dance proper. The held-out takes also hold the partners walking into and out of the
    dance (take 12's last 3 s, take 13's first 2 s, 1.2-2.1 m apart): 10 % of their frames and every real frame
    above 1.2 m (session 11; ``docs/models.md``, "Couples")."""
    idx = np.nonzero(np.asarray(hands) < HOLD_M)[0]
    return slice(0, len(hands)) if len(idx) == 0 else slice(int(idx[0]), int(idx[-1]) + 1)


def couple_distances(lead: Motion, follow: Motion) -> dict[str, np.ndarray]:
    """Per frame: ``root`` floor distance of the roots, ``hands`` nearest hand-to-hand distance (metres),
    ``facing`` the cosine of the angle between the two hip headings (-1: face to face) and ``bearing`` where the
    follower stands from her leader's heading (radians; 0: in front of him)."""
    n = min(lead.n_frames, follow.n_frames)
    pl, pf = motion_positions(lead)[:n], motion_positions(follow)[:n]
    idx = [lead.skeleton.index(h) for h in HANDS]
    hands = np.min(np.stack([np.linalg.norm(pl[:, i] - pf[:, j], axis=-1) for i in idx for j in idx]), axis=0)
    root = np.linalg.norm(lead.root_pos[:n, [0, 2]] - follow.root_pos[:n, [0, 2]], axis=1)
    hip = lead.skeleton.index("hip")
    lead_yaw = hip_yaw(lead.rot[:n, hip])
    facing = np.cos(lead_yaw - hip_yaw(follow.rot[:n, hip]))
    rel = relative_position(lead.root_pos[:n, [0, 2]], lead_yaw, follow.root_pos[:n, [0, 2]])
    return {"root": root, "hands": hands, "facing": facing, "bearing": np.arctan2(rel[:, 1], rel[:, 0])}


def pair_on_stage(lead: Motion, follow: Motion, staging: StagingConfig = DEFAULT_STAGING) -> dict[str, np.ndarray]:
    """Per frame, the pair as the audience sees it: ``visible`` (1.0 when the line between the roots is within
    :data:`VISIBLE_DEG` of the stage's lateral axis), ``far`` (the larger of the partners' root distances from the
    stage centre) and ``mid`` (the midpoint's distance)."""
    n = min(lead.n_frames, follow.n_frames)
    a, b = lead.root_pos[:n, [0, 2]], follow.root_pos[:n, [0, 2]]
    d = b - a
    axis = np.arctan2(d[:, 0], d[:, 1]) - staging.front  # 0: along the audience's line of sight
    visible = np.abs(np.sin(axis)) >= np.sin(np.deg2rad(VISIBLE_DEG))
    c = np.asarray(staging.centre_xz)
    far = np.maximum(np.linalg.norm(a - c, axis=1), np.linalg.norm(b - c, axis=1))
    return {"visible": visible.astype(np.float64), "far": far, "mid": np.linalg.norm(0.5 * (a + b) - c, axis=1)}


def follower_skating(follow: Motion) -> float:
    """Foot skating of a dancer (m/s; ``engine.train.metrics.foot_skating`` on the evaluation's joint layout)."""
    from engine.models.pose_repr import motion_to_vectors
    from engine.train.evaluate import points
    from engine.train.metrics import foot_skating

    up, low = motion_to_vectors(follow)
    return foot_skating(points(up, low), MODEL_FPS)


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein-1 distance between two samples (area between their quantile functions)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    q = np.linspace(0.0, 1.0, 2001)[1:-1]
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def summarise(d: dict[str, np.ndarray], real: dict[str, np.ndarray] | None, real_min_m: float,
              train_min_m: float) -> dict[str, float]:
    root, hands = d["root"], d["hands"]
    hold = hands < HOLD_M
    out = {"root_p5_m": float(np.percentile(root, 5)), "root_median_m": float(np.median(root)),
           "root_p95_m": float(np.percentile(root, 95)), "root_min_m": float(root.min()),
           "below_real_min_share": float(np.mean(root < real_min_m)),
           "below_train_min_share": float(np.mean(root < train_min_m - 1e-6)), "hold_share": float(np.mean(hold)),
           "hands_median_m": float(np.median(hands)),
           "hands_in_hold_median_m": float(np.median(hands[hold])) if hold.any() else float("nan"),
           "face_to_face_share": float(np.mean(d["facing"] < 0.0))}
    if "bearing" in d:  # beside or behind the leader, nearer than the real couples ever come there: through him
        beside = np.abs(d["bearing"]) >= np.deg2rad(FLOOR_TURN_DEG[1])
        out["close_beside_share"] = float(np.mean(beside & (root < FLOOR_SIDE_M - 1e-3)))  # 1 mm: the floor's own
    if "follow_skate" in d:
        out["follower_skate_ms"] = float(np.mean(d["follow_skate"]))
    if "lead_skate" in d:
        out["leader_skate_ms"] = float(np.mean(d["lead_skate"]))
    if "floor_frames" in d:  # frames the placement moved out to the floor; after the speed limit; planted feet slid
        frames = float(np.sum(d["frames"]))
        out.update({f"{k}_share": float(np.sum(d[k])) / frames for k in FLOOR_COUNTS})
    if "visible" in d:
        out["visible_share"] = float(np.mean(d["visible"]))
        out["stage_max_m"] = float(np.max(d["far"]))
        out["stage_p95_m"] = float(np.percentile(d["far"], 95))
        out["mid_max_m"] = float(np.max(d["mid"]))
    if real is not None:
        out["w1_root_m"] = wasserstein_1d(root, real["root"])
        out["w1_hands_m"] = wasserstein_1d(hands, real["hands"])
        out["w1_facing"] = wasserstein_1d(d["facing"], real["facing"])
        if "root_dance" in real:  # against the real dance proper (:func:`dance_window`)
            out["w1_root_dance_m"] = wasserstein_1d(root, real["root_dance"])
            out["w1_hands_dance_m"] = wasserstein_1d(hands, real["hands_dance"])
    elif "root_dance" in d:
        out["root_dance_p95_m"] = float(np.percentile(d["root_dance"], 95))
        out["root_dance_median_m"] = float(np.median(d["root_dance"]))
    return out


#: The measures of each seed's couples (both takes) in ``per_seed`` (the seed-to-seed spread).
PER_SEED = ("w1_root_m", "w1_hands_m", "w1_root_dance_m", "w1_hands_dance_m", "hold_share", "root_median_m",
            "root_p95_m", "visible_share", "face_to_face_share")


def _step_all(model: MotionModel, cond: np.ndarray, times_ms: list[float] | None = None) -> dict[int, Motion]:
    import time

    roots: dict[int, list[np.ndarray]] = {p: [] for p in model.performer_ids()}
    quats: dict[int, list[np.ndarray]] = {p: [] for p in model.performer_ids()}
    for row in cond:
        t0 = time.perf_counter()
        out = model.step(row)
        if times_ms is not None:
            times_ms.append((time.perf_counter() - t0) * 1e3)
        for sf in out:
            roots[sf.pid].append(sf.root)
            quats[sf.pid].append(sf.quat)
    return {p: Motion(model.skeleton, np.concatenate(roots[p]).astype(np.float64),
                      R.quat_to_matrix(np.concatenate(quats[p]).astype(np.float64)), float(MODEL_FPS))
            for p in roots}


def couple_spec(model_dir: Path | None, seed: int) -> ModelSpec:
    """The spec of the live couple kind at batch 1 (``generate --couple``: torch step and decode)."""
    return ModelSpec(model=model_dir, couple=True, performers=2, backend="torch", decode="torch", seed=seed)


def couple_model(model_dir: Path | None, seed: int, follower: FollowerGPT | None = None,
                 pull: bool = True, staged: bool = True) -> MotionModel:
    """One couple built as the live couple kind builds it (``engine.runtime.assemble.build_couple``: the leader
    with the card's sampling, genre guidance included, staged as a pair with the default staging). ``follower``
    replaces the folder's follower; ``pull`` False turns the run-time placement correction and distance floor off;
    ``staged`` False is ``--no-staging`` (the speed limit stays)."""
    fol = follower if follower is not None else load_follower(model_dir or DEFAULT_MODEL_DIR)
    cfg = fol.fcfg if pull else replace(fol.fcfg, pull=0.0, min_root_distance_m=0.0)
    spec = replace(couple_spec(model_dir, seed), staging=replace(DEFAULT_STAGING, steer=staged))
    return build_couple(spec, follower=fol, config=cfg)


def independent_solos(model_dir: Path | None, follower: FollowerGPT, cond: np.ndarray, seed: int,
                      times_ms: list[float] | None = None) -> tuple[Motion, Motion]:
    """Two solo dancers of the leader's GPT generated independently (the live leader's construction, two
    performers in one batch); the second shifted to start at the couple's start placement."""
    spec = couple_spec(model_dir, seed)
    gen, _, controls = gpt_generator(replace(spec, couple=False), 2)
    a, b = gen.add_performer(replace(controls)), gen.add_performer(replace(controls))
    m = _step_all(gen, cond, times_ms)
    lead, other = m[a], m[b]
    yaw0 = float(hip_yaw(lead.rot[0, lead.skeleton.index("hip")]))
    start = from_leader_frame(lead.root_pos[0, [0, 2]], yaw0, np.array(follower.fcfg.start_offset))
    root = other.root_pos.copy()
    root[:, [0, 2]] += start - root[0, [0, 2]]
    return lead, Motion(other.skeleton, root, other.rot, other.fps)


#: The couple kind's floor counters (``CoupleDancer.describe``), reported per generated frame of the follower.
FLOOR_COUNTS = ("floor_frames", "late_floor_frames", "floor_slips")


#: The generated rows of the couple measures, in order (``real`` is always measured).
ROWS = ("couple", "couple, unstaged", "couple, no pull/floor", "untrained follower", "independent solos")


def _row_model(row: str, model_dir: Path, seed: int, trained: FollowerGPT, untrained: FollowerGPT
               ) -> MotionModel | None:
    """The couple model of one generated row (None: ``independent solos``, made by :func:`independent_solos`)."""
    if row == "couple":
        return couple_model(model_dir, seed, trained)
    if row == "couple, unstaged":
        return couple_model(model_dir, seed, trained, staged=False)
    if row == "couple, no pull/floor":
        return couple_model(model_dir, seed, trained, pull=False)
    if row == "untrained follower":
        return couple_model(model_dir, seed, untrained)
    return None


def evaluate_couples(model_dir: Path, data: Path | None = None, seeds: int = 2, seconds: float | None = None,
                     threads: int = 1, progress: bool = True, rows: tuple[str, ...] = ROWS,
                     first_seed: int = 0) -> dict[str, Any]:
    """The rows of the couple measures (``rows``, default all; see the module doc) on the validation takes, for the
    generation seeds ``first_seed`` .. ``first_seed + seeds - 1`` (tune on some seeds, check on others)."""
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown couple rows {unknown}; known: {', '.join(ROWS)}")
    torch.set_num_threads(max(1, threads))
    trained = load_follower(model_dir)
    torch.manual_seed(0)
    untrained = FollowerGPT(trained.fcfg).eval()
    takes = load_split(data, "val", styles=("salsa",))
    train_min = float(trained.fcfg.min_root_distance_m)
    found: dict[str, dict[str, list[np.ndarray]]] = {}
    by_seed: dict[tuple[str, int], dict[str, list[np.ndarray]]] = {}
    step_ms: dict[str, list[float]] = {r: [] for r in ("couple", "couple, unstaged", "independent solos") if r in rows}

    def add(row: str, d: dict[str, np.ndarray], seed: int | None = None) -> None:
        for r in (found.setdefault(row, {}), *(() if seed is None else (by_seed.setdefault((row, seed), {}),))):
            for k, v in d.items():
                r.setdefault(k, []).append(v)

    for take in takes:
        real_d = couple_distances(take.dancers[0], take.dancers[1])
        win = dance_window(real_d["hands"])
        add("real", {**real_d, "root_dance": real_d["root"][win], "hands_dance": real_d["hands"][win],
                     **pair_on_stage(take.dancers[0], take.dancers[1]),
                     "follow_skate": np.array([follower_skating(take.dancers[1])]),
                     "lead_skate": np.array([follower_skating(take.dancers[0])])})
        seed_m = 1000 * int(take.take) + 100_000 * TRAINED_GENRES.index("salsa")
        mus = music_for_take(take, default_cache_dir(), seed_m)
        n_frames = take.n_frames if seconds is None else min(take.n_frames, int(seconds * MODEL_FPS))
        n = n_frames // 4
        cond = sequence_conditions(mus.features[:n_frames], mus.period_s[:n_frames], mus.next_beat_s[:n_frames], n)
        for s in range(first_seed, first_seed + seeds):
            for name in (r for r in ROWS if r in rows):
                model = _row_model(name, model_dir, s, trained, untrained)
                if model is None:
                    lead, follow = independent_solos(model_dir, trained, cond, s, step_ms["independent solos"])
                else:
                    m = _step_all(model, cond, step_ms.get(name))
                    lead, follow = (m[p] for p in model.performer_ids())
                    desc = model.describe()  # how often the floor moved the follower, and planted feet it slid
                    add(name, {k: np.array([float(desc.get(k, 0))]) for k in FLOOR_COUNTS})
                add(name, {**couple_distances(lead, follow), **pair_on_stage(lead, follow),
                           "follow_skate": np.array([follower_skating(follow)]),
                           "lead_skate": np.array([follower_skating(lead)]),
                           "frames": np.array([float(follow.n_frames)])}, seed=s)
                if progress:
                    print(f"take {take.take} seed {s}: {name}", flush=True)
    cat = {row: {k: np.concatenate(v) for k, v in r.items()} for row, r in found.items()}
    real_min = float(cat["real"]["root"].min())
    summary = {row: summarise(d, None if row == "real" else cat["real"], real_min, train_min) for row, d in cat.items()}
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    for (row, s), r in sorted(by_seed.items(), key=lambda kv: kv[0][1]):
        sm = summarise({k: np.concatenate(v) for k, v in r.items()}, cat["real"], real_min, train_min)
        per_seed.setdefault(row, {})[str(s)] = {k: sm[k] for k in PER_SEED}
    return {"model": str(model_dir), "takes": [t.take for t in takes], "seeds": seeds, "first_seed": first_seed,
            "hold_m": HOLD_M,
            "real_min_root_m": real_min, "train_min_root_m": train_min, "summary": summary, "per_seed": per_seed,
            "step_ms_p50": {k: float(np.median(v)) for k, v in step_ms.items() if v},
            "step_ms_p99": {k: float(np.percentile(v, 99)) for k, v in step_ms.items() if v},
            "samples": {row: {k: v.tolist() for k, v in d.items()} for row, d in cat.items()}}


#: The rows of the couple table, in order.
MEASURES = ("w1_root_m", "w1_hands_m", "w1_root_dance_m", "w1_hands_dance_m", "w1_facing", "root_dance_median_m",
            "root_dance_p95_m", "root_p5_m", "root_median_m", "root_p95_m", "root_min_m",
            "below_real_min_share", "below_train_min_share", "close_beside_share", "hold_share", "hands_median_m",
            "hands_in_hold_median_m", "face_to_face_share", "follower_skate_ms", "leader_skate_ms",
            "floor_frames_share", "late_floor_frames_share", "floor_slips_share", "visible_share", "stage_max_m",
            "stage_p95_m", "mid_max_m")


def couple_table(res: dict[str, Any]) -> list[str]:
    """Markdown lines: what was measured, then one row per measure and one column per row of the couple measures
    (``couple.md`` and the couple section of ``eval.md``)."""
    rows = list(res["summary"])
    lines = [f"Model `{res['model']}`; takes {', '.join(res['takes'])}; {res['seeds']} couple(s) per take and row "
             f"(seeds {res.get('first_seed', 0)}-{res.get('first_seed', 0) + res['seeds'] - 1}); "
             f"hold = wrists within {res['hold_m']} m; real minimum root distance {res['real_min_root_m']:.3f} m "
             f"(held-out takes), {res['train_min_root_m']:.3f} m (training couples); the run-time floor "
             f"{FLOOR_FRONT_M:g} m in front of the leader, {FLOOR_SIDE_M:g} m beside or behind him. W1 = 1-D "
             "Wasserstein distance to the real couples' distribution; facing = cosine of the heading difference; "
             f"visible = the line between the partners within {VISIBLE_DEG:g} deg of the stage's lateral axis (seen "
             "from the front, neither hides the other); stage_* = the farther partner's root from the stage centre, "
             "mid = the pair's midpoint; close_beside = the follower beside or behind her leader (bearing from his "
             f"heading {FLOOR_TURN_DEG[1]:g} deg or more) nearer than {FLOOR_SIDE_M:g} m (less 1 mm), where no real "
             "couple comes (two bodies side by side: through him). *_dance = against the real takes from their "
             "first hold to their last (without the partners walking into and out of the dance). Rows: `couple` is "
             "the live couple kind as `play "
             "--couple` runs it (staged), "
             "`couple, unstaged` the same with `--no-staging`.", "",
             "| measure | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for m in MEASURES:
        vals = [res["summary"][r].get(m) for r in rows]
        lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |")
    return lines


def write_couple_report(res: dict[str, Any], out_dir: Path, note: str = "") -> None:
    """couple.json, couple.md and couple.png (root and hand distance histograms) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "couple.json").write_text(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=2))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "root", "root distance (m)"), (axes[1], "hands", "nearest hand distance (m)")):
        bins = np.linspace(0, 3.0 if key == "root" else 2.0, 61)
        for row in ("real", "couple", "untrained follower", "independent solos"):
            if row in res["samples"]:
                ax.hist(np.clip(res["samples"][row][key], 0, bins[-1]), bins=bins, density=True, histtype="step",
                        lw=2 if row in ("real", "couple") else 1.2, label=row)
        if key == "root" and "root_dance" in res["samples"].get("real", {}):
            ax.hist(np.clip(res["samples"]["real"]["root_dance"], 0, bins[-1]), bins=bins, density=True,
                    histtype="step", lw=1.2, ls="--", label="real, first to last hold")
        top = max(np.histogram(np.clip(res["samples"][r][key], 0, bins[-1]), bins=bins, density=True)[0].max()
                  for r in ("real", "couple") if r in res["samples"])
        ax.set_ylim(0, 1.6 * top)  # an untrained follower parked on the floor would dwarf the rest
        ax.set_title(f"{title}; last bin: at or beyond")
        ax.legend()
    fig.suptitle(f"salsa couples, held-out takes {', '.join(res['takes'])}")
    fig.tight_layout()
    fig.savefig(out_dir / "couple.png", dpi=90)
    plt.close(fig)
    lines = ["# Couple measures (salsa, held-out takes)", "", note, "", *couple_table(res)]
    ms = res.get("step_ms_p50", {})
    if ms:
        lines += ["", "Step time (one couple = leader + follower, torch on CPU, 1 thread, beside two solo dancers "
                  "stepped in one batch): " + ", ".join(f"{k} p50 {v:.1f} ms / p99 {res['step_ms_p99'][k]:.1f} ms"
                                                        for k, v in ms.items()) + "."]
    for row, seeds in res.get("per_seed", {}).items():
        lines += ["", f"Per seed (`{row}`, both takes):", "", "| seed | " + " | ".join(PER_SEED) + " |",
                  "|---" * (len(PER_SEED) + 1) + "|"]
        lines += [f"| {s} | " + " | ".join(f"{v[k]:.3f}" for k in PER_SEED) + " |" for s, v in seeds.items()]
    lines += ["", "![distance histograms](couple.png)", ""]
    (out_dir / "couple.md").write_text("\n".join(lines))
