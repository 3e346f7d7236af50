"""AIST++ layout support on a tiny data set written here in that layout (nothing downloaded)."""

from __future__ import annotations

import pickle
import wave
from pathlib import Path

import numpy as np
import pytest

from engine.models.conditioning import GENRES
from engine.skeleton.aistpp import UnsafePickleError
from engine.train.aistpp_data import load_aistpp_split, music_id


def _write_wav(path: Path, seconds: float = 1.0, sr: int = 22050) -> None:
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())


def _make(root: Path) -> Path:
    for sub in ("motions", "wavs", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = ["gBR_sBM_cAll_d04_mBR0_ch01", "gJB_sBM_cAll_d08_mJB1_ch02", "gPO_sBM_cAll_d10_mPO2_ch03"]
    for n in names:
        d = {"smpl_poses": 0.1 * rng.standard_normal((120, 72)), "smpl_trans": rng.standard_normal((120, 3)) * 90.0,
             "smpl_scaling": np.array([90.0])}
        (root / "motions" / f"{n}.pkl").write_bytes(pickle.dumps(d))
        _write_wav(root / "wavs" / f"{music_id(n)}.wav")
    (root / "splits" / "crossmodal_train.txt").write_text("\n".join(names[:2]) + "\n")
    (root / "splits" / "crossmodal_val.txt").write_text(names[2] + "\n")
    (root / "splits" / "ignore_list.txt").write_text(names[1] + "\n")
    return root


def test_loads_split_at_30fps_with_genre(tmp_path: Path) -> None:
    root = _make(tmp_path / "aist")
    train = load_aistpp_split(root, "train")
    assert [s.name for s in train] == ["gBR_sBM_cAll_d04_mBR0_ch01"]  # the other one is ignored
    s = train[0]
    assert s.motion.fps == 30.0 and s.motion.n_frames == 60
    assert s.motion.skeleton.name == "smpl" and s.motion.rot.shape == (60, 24, 3, 3)
    assert GENRES[s.genre] == "break" and s.wav.name == "mBR0.wav"
    val = load_aistpp_split(root, "val")
    assert GENRES[val[0].genre] == "pop"


def test_refuses_code_in_pickles(tmp_path: Path) -> None:
    root = _make(tmp_path / "aist")

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    (root / "motions" / "gBR_sBM_cAll_d04_mBR0_ch01.pkl").write_bytes(pickle.dumps({"smpl_poses": Evil()}))
    with pytest.raises(UnsafePickleError):
        load_aistpp_split(root, "train")


def test_layout_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing folder motions"):
        load_aistpp_split(tmp_path, "train")
    root = _make(tmp_path / "aist")
    with pytest.raises(ValueError, match="unknown AIST"):
        load_aistpp_split(root, "dev")
    (root / "wavs" / "mPO2.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"mPO2\.wav"):
        load_aistpp_split(root, "val")
