"""AIST++ reader on a file written here in AIST++'s layout, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.skeleton import rotations as R
from engine.skeleton.aistpp import AistppError, UnsafePickleError, read_aistpp, restricted_load
from engine.skeleton.motion import load_motion


def _write(path: Path, d: object) -> None:
    path.write_bytes(pickle.dumps(d, protocol=4))


def test_reads_aistpp_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    poses = rng.uniform(-0.5, 0.5, size=(10, 72)).astype(np.float32)
    poses[:, 3 * 18 + 2] = 1.2  # left elbow about Z
    trans = rng.normal(size=(10, 3)) * 90.0
    f = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    _write(f, {"smpl_poses": poses, "smpl_trans": trans, "smpl_scaling": np.array([90.0]), "smpl_loss": 0.1})
    m = read_aistpp(f)
    assert m.num_frames == 10 and m.fps == 60.0 and m.skeleton.name == "smpl"
    np.testing.assert_allclose(m.root_positions, trans / 90.0)
    np.testing.assert_allclose(m.local_rot_mats[:, 18], R.axis_angle_to_matrix(poses[:, 54:57].astype(np.float64)),
                               atol=1e-7)
    mo = load_motion(f)
    assert mo.rotations.shape == (10, 24, 4)


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    data = pickle.dumps({"smpl_poses": Evil()})
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        restricted_load(data)
    f = tmp_path / "evil.pkl"
    f.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl"):
        read_aistpp(f)


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"smpl_trans": np.zeros((2, 3)), "smpl_scaling": [1.0]}, "missing field 'smpl_poses'"),
        ({"smpl_poses": np.zeros((2, 71)), "smpl_trans": np.zeros((2, 3)), "smpl_scaling": [1.0]}, "\\[N, 72\\]"),
        ({"smpl_poses": np.zeros((2, 72)), "smpl_trans": np.zeros((3, 3)), "smpl_scaling": [1.0]}, "smpl_trans"),
        ({"smpl_poses": np.zeros((2, 72)), "smpl_trans": np.zeros((2, 3)), "smpl_scaling": [0.0]}, "smpl_scaling"),
        ([1, 2], "expected a dict"),
    ],
)
def test_bad_fields_named(tmp_path: Path, d: object, message: str) -> None:
    f = tmp_path / "m.pkl"
    _write(f, d)
    with pytest.raises(AistppError, match=message):
        read_aistpp(f)


def test_not_a_pickle(tmp_path: Path) -> None:
    f = tmp_path / "junk.pkl"
    f.write_bytes(b"this is not a pickle")
    with pytest.raises(AistppError, match="not a readable pickle"):
        read_aistpp(f)
