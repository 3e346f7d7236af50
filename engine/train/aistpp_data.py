"""AIST++ data set layout: ``motions/*.pkl`` + ``wavs/*.wav`` + ``splits/*.txt``, for users who have it.

Nothing is downloaded. Motions are read with the restricted unpickler of
:mod:`engine.skeleton.aistpp` (numpy arrays, dicts and basic types only), resampled from 60 to 30 fps,
and paired with their music (the ``m...`` field of the sequence name) analysed by the live analysis code.
Sequences in ``splits/ignore_list.txt`` are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.conditioning import genre_id
from engine.models.pose_repr import Motion, resample_motion
from engine.skeleton.aistpp import read_aistpp

#: AIST++ genre codes (first field of a sequence name) -> genre names of engine.models.conditioning.
AIST_GENRES: dict[str, str] = {
    "gBR": "break", "gPO": "pop", "gLO": "lock", "gMH": "hiphop", "gLH": "hiphop",
    "gHO": "house", "gWA": "waack", "gKR": "krump", "gJS": "jazz", "gJB": "ballet",
}
SPLIT_FILES: dict[str, str] = {
    "train": "crossmodal_train.txt", "val": "crossmodal_val.txt", "test": "crossmodal_test.txt",
}


@dataclass
class AistppSequence:
    """One AIST++ sequence at MODEL_FPS with its music file and genre."""

    name: str
    motion: Motion  # SMPL skeleton, metres, 30 fps
    wav: Path
    genre: int


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def music_id(name: str) -> str:
    """The music id of a sequence name such as ``gBR_sBM_cAll_d04_mBR0_ch01`` (-> ``mBR0``)."""
    parts = name.split("_")
    for p in parts:
        if p.startswith("m") and len(p) >= 3 and p[1:3].isalpha():
            return p
    raise ValueError(f"sequence name {name!r} has no music field (like 'mBR0')")


def load_aistpp_split(root: Path, split: str) -> list[AistppSequence]:
    """Sequences of one split; clear errors for a missing layout part or an unknown split."""
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown AIST++ split {split!r}; use one of {sorted(SPLIT_FILES)}")
    for sub in ("motions", "wavs", "splits"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root} is not in the AIST++ layout: missing folder {sub}/")
    names = _read_list(root / "splits" / SPLIT_FILES[split])
    if not names:
        raise FileNotFoundError(f"{root / 'splits' / SPLIT_FILES[split]} is missing or lists no sequences")
    ignore = set(_read_list(root / "splits" / "ignore_list.txt"))
    out = []
    for name in names:
        if name in ignore:
            continue
        pkl = root / "motions" / f"{name}.pkl"
        wav = root / "wavs" / f"{music_id(name)}.wav"
        if not wav.is_file():
            raise FileNotFoundError(f"music {wav.name} of sequence {name} not found in {root / 'wavs'}")
        m = read_aistpp(pkl)
        src = Motion(skeleton=m.skeleton, root_pos=m.root_positions, rot=m.local_rot_mats, fps=m.fps)
        step = m.fps / MODEL_FPS
        motion = resample_motion(src, np.arange(0, m.num_frames - 1e-9, step), float(MODEL_FPS))
        code = name.split("_")[0]
        out.append(AistppSequence(name=name, motion=motion, wav=wav, genre=genre_id(AIST_GENRES.get(code))))
    return out
