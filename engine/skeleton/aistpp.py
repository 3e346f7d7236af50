"""AIST++ motion reader (SMPL poses) with a restricted unpickler: never plain ``pickle.load``."""

from __future__ import annotations

import io
import pickle
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.skeleton import rotations as R
from engine.skeleton.skeleton import SMPL_SKELETON, Skeleton

#: AIST++ motions are sampled at 60 fps.
AISTPP_FPS = 60.0

# The only globals a pickled AIST++ motion needs: numpy array reconstruction and dtypes.
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "float"),
        ("builtins", "int"),
        ("builtins", "str"),
        ("builtins", "bytes"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # numpy arrays pickled under Python 2 protocols store bytes this way
    }
)


#: AIST++ motion files are a few MB; larger ones are refused before reading.
MAX_PICKLE_BYTES = 64 * 1024 * 1024


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle asked for a global outside the allow-list (numpy arrays, dicts, basic types)."""


class AistppError(ValueError):
    """A motion file without the AIST++ layout; names the field at fault."""


def _bytes(*args: Any) -> bytes:
    """``bytes`` for a pickle: from bytes-like or text data only (``bytes(10**9)`` would allocate a GB)."""
    if args and isinstance(args[0], int):
        raise UnsafePickleError("refusing bytes(<int>): it allocates whatever size the pickle names")
    return bytes(*args)


def _guard_reconstruct(real: Any) -> Any:
    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
        # numpy pickles an array as _reconstruct(ndarray, (0,), ...) + its state; a large shape here would
        # only allocate memory the file does not pay for.
        n = 1
        for d in shape if isinstance(shape, tuple | list) else (shape,):
            n *= int(d)
        if n > 1024:
            raise UnsafePickleError(f"refusing to pre-allocate an array of shape {shape}")
        return real(subtype, shape, dtype)

    return reconstruct


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            if (module, name) == ("builtins", "bytes"):
                return _bytes
            if name == "_reconstruct":
                return _guard_reconstruct(super().find_class(module, name))
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load global {module}.{name}: only numpy arrays, dicts and basic types are allowed"
        )


def _check_memo(data: bytes) -> None:
    """Refuse memo indices beyond the pickle's size: the C unpickler sizes its memo table to the largest
    index it is given, so 5 bytes (``LONG_BINPUT 0x7fffffff``) would allocate gigabytes."""
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int | str) and int(arg) > len(data):
            raise UnsafePickleError(f"refusing memo index {arg} in a pickle of {len(data)} bytes")


def restricted_load(data: bytes) -> Any:
    """Unpickle ``data`` allowing only numpy arrays, dicts and basic types, and no allocation it does not hold."""
    _check_memo(data)
    return _RestrictedUnpickler(io.BytesIO(data)).load()


@dataclass
class AistppMotion:
    """An AIST++ motion in engine space (metres; Y up like AIST++).

    Attributes:
        skeleton: the SMPL skeleton.
        fps: frames per second (60 for AIST++).
        root_positions: ``[N, 3]`` pelvis translation in metres (``smpl_trans / smpl_scaling``).
        local_rot_mats: ``[N, 24, 3, 3]`` joint-local rotations from ``smpl_poses``.
        scaling: the file's ``smpl_scaling``.
    """

    skeleton: Skeleton
    fps: float
    root_positions: np.ndarray
    local_rot_mats: np.ndarray
    scaling: float

    @property
    def num_frames(self) -> int:
        return int(self.root_positions.shape[0])

    @property
    def local_quats(self) -> np.ndarray:
        return R.matrix_to_quat(self.local_rot_mats)


def _field(d: dict[str, Any], key: str, path: str) -> np.ndarray:
    if key not in d:
        raise AistppError(f"{path}: missing field {key!r}; fields present: {sorted(d)}")
    try:
        return np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise AistppError(f"{path}: field {key!r} is not numeric") from None


def motion_from_dict(d: Any, source: str = "<dict>") -> AistppMotion:
    """Validate and convert an AIST++ dict (``smpl_poses [N, 72]``, ``smpl_trans [N, 3]``, ``smpl_scaling``)."""
    if not isinstance(d, dict):
        raise AistppError(f"{source}: expected a dict of arrays, got {type(d).__name__}")
    poses = _field(d, "smpl_poses", source)
    trans = _field(d, "smpl_trans", source)
    scaling = _field(d, "smpl_scaling", source).reshape(-1)
    if poses.ndim != 2 or poses.shape[1] != 72:
        raise AistppError(f"{source}: field 'smpl_poses' must be [N, 72] (24 joints x axis-angle), got {poses.shape}")
    if trans.shape != (poses.shape[0], 3):
        raise AistppError(f"{source}: field 'smpl_trans' must be [{poses.shape[0]}, 3], got {trans.shape}")
    if scaling.size != 1 or not np.isfinite(scaling[0]) or scaling[0] <= 0:
        raise AistppError(f"{source}: field 'smpl_scaling' must be one positive number, got {scaling.tolist()}")
    if not (np.all(np.isfinite(poses)) and np.all(np.isfinite(trans))):
        raise AistppError(f"{source}: 'smpl_poses' or 'smpl_trans' contains non-finite values")
    s = float(scaling[0])
    rot = R.axis_angle_to_matrix(poses.reshape(-1, 24, 3))
    return AistppMotion(SMPL_SKELETON, AISTPP_FPS, trans / s, rot, s)


def read_aistpp(path: str | Path) -> AistppMotion:
    """Read an AIST++ motion ``.pkl`` with the restricted unpickler."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise AistppError(f"{p}: {size / 1e6:.0f} MB is larger than an AIST++ motion may be "
                              f"({MAX_PICKLE_BYTES / 1e6:.0f} MB)")
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"AIST++ motion file not found: {p}") from None
    except OSError as exc:
        raise AistppError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    try:
        obj = restricted_load(data)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{p}: {exc}") from None
    except (MemoryError, RecursionError) as exc:
        raise AistppError(f"{p}: not a readable pickle ({type(exc).__name__})") from None
    except Exception as exc:  # untrusted bytes: any failure of the unpickler is "not readable", in one line
        raise AistppError(f"{p}: not a readable pickle ({type(exc).__name__}: {str(exc)[:120]})") from None
    return motion_from_dict(obj, str(p))
