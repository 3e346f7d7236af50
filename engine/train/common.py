"""Shared training plumbing: seeds, threads, JSON config files, resumable checkpoints, run logs."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warmup_cosine_lr(step: int, lr: float, lr_final: float, warmup: int, steps: int) -> float:
    """Learning rate at ``step``: linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``lr_final``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, steps - warmup))
    return float(lr_final + 0.5 * (lr - lr_final) * (1 + np.cos(np.pi * frac)))


def set_threads(n: int) -> None:
    """Limit torch's CPU threads (the project's CPU budget is 2 cores)."""
    if n > 0:
        torch.set_num_threads(n)


def override(obj: T, values: dict[str, Any], what: str) -> T:
    """Dataclass ``obj`` with fields replaced from ``values``; unknown keys are a clear error."""
    names = {f.name for f in fields(obj)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; known: {sorted(names)}")
    d = asdict(obj)  # type: ignore[call-overload]
    d.update(values)
    return type(obj)(**d)


def read_config_file(path: Path | None) -> dict[str, Any]:
    """A JSON config file ({"train": {...}, "model": {...}}); {} when no file is given."""
    if path is None:
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    bad = sorted(set(data) - {"train", "model"})
    if bad:
        raise ValueError(f"config file {path}: unknown sections {bad}; use 'train' and 'model'")
    return data


def trainable_parameters(model: torch.nn.Module, train_only: tuple[str, ...] | list[str],
                         what: str) -> list[torch.nn.Parameter]:
    """The parameters to optimise: those whose names start with a ``train_only`` prefix (all when empty); the
    others are frozen (``requires_grad`` off). A prefix that names no parameter is a ValueError naming ``what``
    and listing the model's top-level modules."""
    named = dict(model.named_parameters())
    prefixes = tuple(train_only)
    if prefixes:
        unknown = [p for p in prefixes if not any(n == p or n.startswith(p + ".") for n in named)]
        if unknown:
            tops = sorted({n.split(".")[0] for n in named})
            raise ValueError(f"train_only {unknown} names no {what} parameter; its modules: {tops}")
        for n, prm in named.items():
            prm.requires_grad_(any(n == p or n.startswith(p + ".") for p in prefixes))
    return [prm for prm in named.values() if prm.requires_grad]


def save_training_state(path: Path, step: int, optimizer: torch.optim.Optimizer, rng_state: dict[str, Any]) -> None:
    """Optimizer + step + RNG for resume (a torch file read back with weights_only=True)."""
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": rng_state}, path)


def load_training_state(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    return {"numpy": json.dumps(gen.bit_generator.state), "torch": torch.get_rng_state()}


def restore_rng(gen: np.random.Generator, state: dict[str, Any]) -> None:
    gen.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])


def file_logger(name: str, path: Path) -> logging.Logger:
    """A logger that also appends to ``path`` (training logs survive the terminal)."""
    log = logging.getLogger(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve() for h in log.handlers):
        h = logging.FileHandler(path)
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO)
    return log
