"""The motion capture sources: where each lives, its TRUE frame rate and units, its split, and why.

This table is the one place that says at what rate and scale each capture is read, for training and for
the retrieval model alike. The BVH parser reports what a file's header says; the loader
(:func:`engine.models.capture.load_source_motion`) overrides it with :attr:`MotionSource.fps` from here.
:mod:`engine.train.plausibility` checks every source against human ranges (root speed, spin rate, step
cadence), so a wrong rate here fails a test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Default root of the shared data (one sub-folder per source).
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass(frozen=True)
class MotionSource:
    """One capture source.

    Attributes:
        style: genre name used for training and control (see ``engine.models.conditioning.GENRES``).
        folder: sub-folder of the data root.
        pattern: file name regex; group 1 = dancer id (may be empty), group 2 = take id.
        fps: the true capture rate (frames per second), which may differ from the file headers.
        header_fps: what the headers say (documented; not used for reading).
        units_per_cmu_unit: file units per unit of the rescaled CMU salsa skeleton (1 for salsa, 128 for
            the unscaled Indian files); ``None`` = a different skeleton, retargeted and scaled by bone lengths.
        drop_leading: source frames dropped at the start (a T-pose prepended by the conversion).
        train_takes / val_takes: take ids; validation is held out by take, never by file.
        why: the evidence for ``fps`` (and the rest).
    """

    style: str
    folder: str
    pattern: str
    fps: float
    header_fps: float
    units_per_cmu_unit: float | None
    drop_leading: int
    train_takes: tuple[str, ...]
    val_takes: tuple[str, ...]
    why: str

    def takes(self, split: str) -> tuple[str, ...]:
        if split == "train":
            return self.train_takes
        if split == "val":
            return self.val_takes
        raise ValueError(f"unknown split {split!r}; use 'train' or 'val'")

    def list_takes(self, folder: Path) -> dict[str, list[Path]]:
        """Take id -> its files (one per dancer, sorted); a clear error if the folder holds none."""
        if not folder.is_dir():
            raise FileNotFoundError(f"{self.style} folder {folder} does not exist")
        rx = re.compile(self.pattern)
        out: dict[str, list[Path]] = {}
        for p in sorted(folder.iterdir()):
            m = rx.match(p.name)
            if m:
                out.setdefault(m.group(2), []).append(p)
        if not out:
            raise FileNotFoundError(f"no {self.style} files matching {self.pattern} in {folder}")
        return out


SOURCES: dict[str, MotionSource] = {
    "salsa": MotionSource(
        style="salsa",
        folder="cmu_salsa",
        pattern=r"^(6[01])_(\d\d)_scaled\.bvh$",
        fps=60.0,
        header_fps=120.0,
        units_per_cmu_unit=1.0,
        drop_leading=0,
        train_takes=("01", "02", "03", "04", "05", "06", "07", "09", "10", "11"),
        val_takes=("12", "13"),
        why=(
            "CMU's own index lists every take of subjects 60/61 at 60 fps; the BVH headers say 120. Read at "
            "120 fps the follower's root travels at a median 1.2 m/s and spins at >= 2.3 rev/s 5 % of the time; "
            "at 60 fps both halve to ordinary salsa values (../shared/data/cmu_salsa/README.md)."
        ),
    ),
    "indian": MotionSource(
        style="indian",
        folder="cmu_indian",
        pattern=r"^()indian_(\d\d)\.bvh$",
        fps=120.0,
        header_fps=120.0,
        units_per_cmu_unit=128.0,
        drop_leading=1,
        train_takes=("04", "06", "08", "13", "14"),
        val_takes=("07",),
        why=(
            "CMU subject 94, 120 fps as both the header and CMU's index say; same skeleton as the salsa files "
            "but unscaled (x128); frame 0 is a T-pose (../shared/data/cmu_indian/README.md)."
        ),
    ),
    "modern": MotionSource(
        style="modern",
        folder="cmu_modern",
        pattern=r"^()05_(\d\d)\.bvh$",
        fps=60.0,
        header_fps=60.0,
        units_per_cmu_unit=None,
        drop_leading=0,
        train_takes=("02", "03", "04", "05", "07", "08", "09", "10", "11", "13", "14", "15", "16", "18"),
        val_takes=("06", "12", "17"),
        why=(
            "CMU subject 05 in an iClone (CC_Base_*) conversion, centimetres; the conversion set each file's "
            "frame time from CMU's index: 60 fps (../shared/data/cmu_modern/README.md). The README says frame 0 "
            "is a T-pose; in these 17 files it is not (no frame is within 25 deg of one), so nothing is dropped "
            "beyond what the retargeter detects as a T-pose."
        ),
    ),
}

#: Training order of the styles (salsa first: it is the largest).
STYLES: tuple[str, ...] = tuple(SOURCES)


def source(style: str) -> MotionSource:
    try:
        return SOURCES[style]
    except KeyError:
        raise KeyError(f"unknown motion source {style!r}; known: {', '.join(SOURCES)}") from None


def resolve_folders(data: Path | None, styles: tuple[str, ...] = STYLES) -> dict[str, Path]:
    """Style -> folder. ``data`` may be the data root (with ``cmu_salsa/`` ...) or one source's folder.

    A folder that directly holds one source's files selects that style only (so ``--data
    ../shared/data/cmu_salsa`` keeps working).
    """
    root = data if data is not None else DEFAULT_DATA_ROOT
    if not root.is_dir():
        raise FileNotFoundError(f"motion data folder {root} does not exist")
    for st in styles:
        src = SOURCES[st]
        rx = re.compile(src.pattern)
        if any(rx.match(p.name) for p in root.iterdir()):
            return {st: root}
    out = {st: root / SOURCES[st].folder for st in styles if (root / SOURCES[st].folder).is_dir()}
    if not out:
        raise FileNotFoundError(f"no motion source folders ({', '.join(SOURCES[s].folder for s in styles)}) in {root}")
    return out
