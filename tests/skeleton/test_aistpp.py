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


# ------------------------------------------------------------------ small pickles, huge costs (issue 13 items 7, 11)

#: ``_reconstruct(ndarray, (500000000,), b"b")``: 60 bytes of allow-listed globals asking for 500 MB.
_BIG_ARRAY = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
              b"J\x00\x65\xcd\x1d\x85C\x01b\x87R.")
#: ``bytes(1000000000)``: a GB of zeros from 20 bytes.
_BIG_BYTES = b"\x80\x02cbuiltins\nbytes\nJ\x00\xca\x9a\x3b\x85R."


#: ``LONG_BINPUT 0x0a796172``: the C unpickler grows its memo table to 175 million entries (found by the fuzzer).
_BIG_MEMO = b"\x80\x02}r\x72\x61\x79\x0a."


@pytest.mark.parametrize("data", [_BIG_ARRAY, _BIG_BYTES, _BIG_MEMO])
def test_allow_listed_globals_cannot_allocate_what_the_file_does_not_hold(tmp_path: Path, data: bytes) -> None:
    """Issue 13 item 7: a 42-byte pickle of allow-listed globals reached 1.9 GB before it was refused."""
    import tracemalloc

    f = tmp_path / "small.pkl"
    f.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match="refusing"):
            read_aistpp(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


def test_every_unpickling_failure_is_one_line_and_a_value_error(tmp_path: Path) -> None:
    """Issue 13 item 11: the refusal of a pickle was a traceback in `groovecast replay`."""
    from engine.cli import main

    cases = {
        "evil.pkl": b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x85R.",
        "cut.pkl": _BIG_ARRAY[:20],
        "stack.pkl": b"\x80\x02R.",
        "deep.pkl": b"\x80\x02" + b"(" * 100_000 + b".",
    }
    for name, data in cases.items():
        f = tmp_path / name
        f.write_bytes(data)
        with pytest.raises(ValueError) as e:  # AistppError and UnsafePickleError are ValueErrors
            read_aistpp(f)
        assert name in str(e.value) and "\n" not in str(e.value)
    assert main(["replay", str(tmp_path / "evil.pkl")]) == 2
