"""Dance quality metrics: FID_k/FID_g, diversity, Beat Align Score, Physical Foot Contact, skating, freezing.

Definitions follow AIST++/Bailando (kinetic and geometric features, FID, diversity, BAS) and EDGE
(PFC), adapted to the CMU body (21 joints + 2 toe end sites, metres, 30 fps):

* kinetic features (per joint: mean horizontal kinetic energy, mean vertical kinetic energy, mean
  energy expenditure |a|) of root-relative joint positions -> 69 values per segment;
* geometric features: a Müller-style subset of boolean relational features (hands above head, hand in
  front of chest, foot raised, knees / elbows bent, hands apart, feet apart, crossing legs, ...)
  averaged over the segment -> 16 values;
* with few validation takes we compute features per segment (``SEGMENT_S`` long, ``SEGMENT_HOP_S`` hop)
  rather than per whole dance, and say so in the report;
* BAS: motion beats are local minima of the mean joint speed (motion up-sampled to 60 fps, Gaussian
  smoothing sigma 5 frames as Bailando's code), score = mean over music beats of
  exp(-d^2 / (2 * 3^2)) with d the distance in 60 fps frames to the nearest motion beat;
* PFC (EDGE): mean over frames of (root horizontal acceleration / its max) * min over feet of
  (ankle speed / its max).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

SEGMENT_S = 4.0
SEGMENT_HOP_S = 2.0

# Indices in the FK layout of engine.models.pose_repr.model_fk_layout (21 model joints + 2 toes).
_HIP, _RBUT, _RTHIGH, _RSHIN, _RFOOT, _LBUT, _LTHIGH, _LSHIN, _LFOOT = range(9)
_ABD, _CHEST, _NECK, _HEAD = 9, 10, 11, 12
_RCOL, _RSH, _RFA, _RHAND, _LCOL, _LSH, _LFA, _LHAND = range(13, 21)
_RTOE, _LTOE = 21, 22


def root_relative(pos: np.ndarray) -> np.ndarray:
    """Subtract the root's horizontal position per frame. pos: [T, J, 3]."""
    out = pos.copy()
    out[:, :, [0, 2]] -= pos[:, :1, [0, 2]]
    return out


def kinetic_features(pos: np.ndarray, fps: float) -> np.ndarray:
    """[T, J, 3] positions -> [3J] (horizontal KE, vertical KE, energy expenditure per joint)."""
    p = root_relative(pos)
    v = np.diff(p, axis=0) * fps  # [T-1, J, 3]
    a = np.diff(v, axis=0) * fps  # [T-2, J, 3]
    ke_h = 0.5 * (v[..., 0] ** 2 + v[..., 2] ** 2).mean(0)
    ke_v = 0.5 * (v[..., 1] ** 2).mean(0)
    ee = np.linalg.norm(a, axis=-1).mean(0)
    return np.concatenate([ke_h, ke_v, ee]).astype(np.float64)


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle at b (radians) of the triangle a-b-c, per frame."""
    u = a - b
    w = c - b
    cos = (u * w).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(w, axis=-1) + 1e-9)
    return np.arccos(np.clip(cos, -1, 1))


def geometric_features(pos: np.ndarray) -> np.ndarray:
    """[T, J, 3] positions -> [16] share of frames where each relational feature holds."""
    p = pos
    y = p[..., 1]
    floor = np.minimum(p[:, _RTOE, 1], p[:, _LTOE, 1]).min()
    # Body frame: facing direction from the shoulder line (cross with up), horizontal.
    across = p[:, _LSH] - p[:, _RSH]
    fwd = np.cross(across, np.array([0.0, 1.0, 0.0]))
    fwd[:, 1] = 0
    fwd /= np.linalg.norm(fwd, axis=-1, keepdims=True) + 1e-9
    chest = p[:, _CHEST]
    shoulder_w = np.linalg.norm(across, axis=-1)
    feats = [
        y[:, _RHAND] > y[:, _HEAD],
        y[:, _LHAND] > y[:, _HEAD],
        ((p[:, _RHAND] - chest) * fwd).sum(-1) > 0.25,
        ((p[:, _LHAND] - chest) * fwd).sum(-1) > 0.25,
        p[:, _RFOOT, 1] - floor > 0.2,
        p[:, _LFOOT, 1] - floor > 0.2,
        _angle(p[:, _RTHIGH], p[:, _RSHIN], p[:, _RFOOT]) < 2.6,
        _angle(p[:, _LTHIGH], p[:, _LSHIN], p[:, _LFOOT]) < 2.6,
        _angle(p[:, _RSH], p[:, _RFA], p[:, _RHAND]) < 2.0,
        _angle(p[:, _LSH], p[:, _LFA], p[:, _LHAND]) < 2.0,
        np.linalg.norm(p[:, _RHAND] - p[:, _LHAND], axis=-1) > 2.0 * shoulder_w,
        np.linalg.norm(p[:, _RFOOT] - p[:, _LFOOT], axis=-1) > shoulder_w,
        ((p[:, _RFOOT] - p[:, _LFOOT]) * np.cross(fwd, [0.0, 1.0, 0.0])).sum(-1) > 0,  # legs crossed
        ((p[:, _RFOOT] - p[:, _HIP]) * fwd).sum(-1) > 0.15,
        ((p[:, _LFOOT] - p[:, _HIP]) * fwd).sum(-1) > 0.15,
        y[:, _HIP] - floor < 0.8,  # crouching
    ]
    return np.array([f.mean() for f in feats], dtype=np.float64)


def segments(pos: np.ndarray, fps: float, seg_s: float = SEGMENT_S, hop_s: float = SEGMENT_HOP_S) -> list[np.ndarray]:
    """Overlapping windows of a [T, J, 3] clip (a clip shorter than one window is one segment)."""
    n = int(seg_s * fps)
    h = int(hop_s * fps)
    if len(pos) <= n:
        return [pos]
    return [pos[s : s + n] for s in range(0, len(pos) - n + 1, h)]


def segment_features(clips: list[np.ndarray], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Kinetic [S, 69] and geometric [S, 16] features of all segments of the clips."""
    kin, geo = [], []
    for c in clips:
        for s in segments(c, fps):
            kin.append(kinetic_features(s, fps))
            geo.append(geometric_features(s))
    return np.stack(kin), np.stack(geo)


def normalise_pair(real: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both feature sets with the real set's mean/std (as Bailando's evaluation)."""
    mu = real.mean(0)
    sd = real.std(0) + 1e-8
    return (real - mu) / sd, (gen - mu) / sd


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of feature sets a [N, D] and b [M, D]."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = np.cov(a, rowvar=False) + 1e-6 * np.eye(a.shape[1])
    s2 = np.cov(b, rowvar=False) + 1e-6 * np.eye(b.shape[1])
    covmean = linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def diversity(feats: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between feature vectors."""
    n = len(feats)
    if n < 2:
        return 0.0
    d = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
    return float(d.sum() / (n * (n - 1)))


def upsample(pos: np.ndarray, factor: int = 2) -> np.ndarray:
    """Linear interpolation in time by an integer factor. [T, ...] -> [(T-1)*factor + 1, ...]."""
    t = np.arange(len(pos))
    tt = np.linspace(0, len(pos) - 1, (len(pos) - 1) * factor + 1)
    flat = pos.reshape(len(pos), -1)
    out = np.stack([np.interp(tt, t, flat[:, i]) for i in range(flat.shape[1])], axis=1)
    return out.reshape(len(tt), *pos.shape[1:])


def motion_beats(pos: np.ndarray, fps: float, sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Motion beats (frame indices, local minima of smoothed joint speed) and the speed curve."""
    v = np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean(-1) * fps  # [T-1]
    v = gaussian_filter1d(v, sigma)
    # find_peaks on -v: strict local minima, plus the middle of flat minima (argrelextrema misses those).
    return find_peaks(-v)[0], v


def beat_align_score(pos: np.ndarray, fps: float, music_beats_s: np.ndarray, sigma: float = 3.0) -> float:
    """Bailando's BAS at 60 fps: mean over music beats of exp(-d^2 / (2 sigma^2)), d to nearest motion beat."""
    p60 = upsample(pos, 2) if abs(fps - 30.0) < 1e-6 else pos
    mb, _ = motion_beats(p60, 60.0)
    dur = len(p60) / 60.0
    beats = np.asarray([b for b in music_beats_s if 0 <= b < dur]) * 60.0
    if len(mb) == 0 or len(beats) == 0:
        return 0.0
    d = np.abs(beats[:, None] - mb[None]).min(1)
    return float(np.mean(np.exp(-(d**2) / (2 * sigma**2))))


def physical_foot_contact(pos: np.ndarray, fps: float) -> float:
    """EDGE's PFC (lower is better): root horizontal acceleration gated by the slower foot's speed."""
    root = pos[:, _HIP]
    v_root = np.diff(root, axis=0) * fps
    a_root = np.diff(v_root, axis=0) * fps  # [T-2, 3]
    a_h = np.linalg.norm(a_root[:, [0, 2]], axis=-1)
    feet = pos[:, [_RFOOT, _LFOOT]]
    v_feet = np.linalg.norm(np.diff(feet, axis=0), axis=-1)[1:] * fps  # [T-2, 2]
    a_n = a_h / (a_h.max() + 1e-9)
    v_n = v_feet / (v_feet.max(0, keepdims=True) + 1e-9)
    return float(np.mean(a_n * v_n.min(1)))


def foot_skating(pos: np.ndarray, fps: float, height_m: float = 0.05) -> float:
    """Mean horizontal speed (m/s) of foot points while they are within ``height_m`` of the floor."""
    pts = pos[:, [_RFOOT, _RTOE, _LFOOT, _LTOE]]
    floor = np.percentile(pts[..., 1], 5, axis=0)
    low = (pts[1:, :, 1] - floor) < height_m
    v = np.linalg.norm(np.diff(pts[..., [0, 2]], axis=0), axis=-1) * fps
    return float(v[low].mean()) if low.any() else 0.0


def longest_freeze_s(pos: np.ndarray, fps: float, speed_ms: float = 0.05) -> float:
    """Longest stretch (s) where the mean root-relative joint speed stays below ``speed_ms``."""
    v = np.linalg.norm(np.diff(root_relative(pos), axis=0), axis=-1).mean(-1) * fps
    still = v < speed_ms
    best = run = 0
    for s in still:
        run = run + 1 if s else 0
        best = max(best, run)
    return best / fps


def facing_yaw(pos: np.ndarray) -> np.ndarray:
    """Facing yaw per frame (radians from +Z towards +X) from the hip joints: forward = left x up. pos: [T, J, 3]."""
    left = pos[:, _LTHIGH] - pos[:, _RTHIGH]
    fwd = np.stack([-left[:, 2], np.zeros(len(left)), left[:, 0]], axis=-1)  # left x (0, 1, 0)
    return np.arctan2(fwd[:, 0], fwd[:, 2])


def facing_share(pos: np.ndarray, front_rad: float = 0.0, within_deg: float = 45.0) -> float:
    """Share of frames whose facing is within ``within_deg`` of the front."""
    err = (facing_yaw(pos) - front_rad + np.pi) % (2 * np.pi) - np.pi
    return float(np.mean(np.abs(err) <= np.deg2rad(within_deg)))


def spin_rates(pos: np.ndarray, fps: float) -> np.ndarray:
    """Absolute hip turn rate per frame (revolutions per second)."""
    return np.abs(np.diff(np.unwrap(facing_yaw(pos)))) * fps / (2 * np.pi)


def stage_distance(pos: np.ndarray, centre_xz: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """(max, 95th percentile) horizontal distance of the root from the stage centre, metres."""
    d = np.linalg.norm(pos[:, _HIP, [0, 2]] - np.asarray(centre_xz), axis=-1)
    return float(d.max()), float(np.percentile(d, 95))


def joint_speed_ratio(pos: np.ndarray, fps: float, limits: np.ndarray) -> np.ndarray:
    """Per frame, the largest ratio of a point's speed to its limit ([J] m/s, e.g. the real 99.9th percentile)."""
    v = np.linalg.norm(np.diff(pos, axis=0), axis=-1) * fps
    return np.asarray((v / np.asarray(limits)).max(axis=-1))
