"""Put a fine-tuned VQ-VAE decoder into a model folder, refusing unless the tokens stay exactly the same.

A decoder fine-tune (``groovecast train vqvae`` with ``"init_from"`` and ``"train_only": ["dec_up", "dec_down"]``,
``docs/models.md``: "Session 7: a beat-conditioned decoder") changes only the decoders, so the encoder and the
codebooks, and with them every token the GPT and the couple follower were trained on, must be bit-identical to
the model folder's VQ-VAE. This checks that tensor by tensor before it copies ``vqvae.json`` and
``vqvae.safetensors`` into the folder::

    python -m engine.train.swap_decoder RUN MODEL_DIR [--check]

``--check`` only compares (exit status 1 and one line per difference when they differ).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

#: Tensor name prefixes a decoder fine-tune may change or add.
DECODER_PREFIXES = ("dec_up.", "dec_down.")

VQ_FILES = ("vqvae.json", "vqvae.safetensors")


def token_differences(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> list[str]:
    """What differs between two VQ-VAE state dicts outside the decoders (empty: the same tokens, bit for bit).
    Decoder tensors may differ or be added; every other tensor must be present in both with equal bytes."""
    out = []
    for name in sorted(set(old) | set(new)):
        if name.startswith(DECODER_PREFIXES):
            if name in old and name not in new:
                out.append(f"{name}: a decoder tensor was removed")
            continue
        if name not in new:
            out.append(f"{name}: missing from the new VQ-VAE")
        elif name not in old:
            out.append(f"{name}: not in the model folder's VQ-VAE")
        elif old[name].dtype != new[name].dtype or old[name].shape != new[name].shape:
            out.append(f"{name}: {old[name].dtype}{list(old[name].shape)} -> {new[name].dtype}{list(new[name].shape)}")
        elif old[name].tobytes() != new[name].tobytes():
            out.append(f"{name}: values differ")
    return out


def swap_decoder(run: Path, model_dir: Path, check_only: bool = False) -> list[str]:
    """Compare ``run``'s VQ-VAE with ``model_dir``'s; copy it in when only the decoders differ (and not
    ``check_only``). Returns the differences outside the decoders (nothing is copied when there are any)."""
    for d in (run, model_dir):
        for f in VQ_FILES:
            if not (d / f).is_file():
                raise FileNotFoundError(f"{d / f}: no such file")
    diffs = token_differences(load_file(str(model_dir / "vqvae.safetensors")),
                              load_file(str(run / "vqvae.safetensors")))
    if not diffs and not check_only:
        for f in VQ_FILES:
            shutil.copyfile(run / f, model_dir / f)
    return diffs


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m engine.train.swap_decoder", description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="the decoder fine-tune's run folder (vqvae.json, vqvae.safetensors)")
    ap.add_argument("model_dir", type=Path, help="the model folder whose VQ-VAE it replaces")
    ap.add_argument("--check", action="store_true", help="only compare; copy nothing")
    args = ap.parse_args(argv)
    try:
        diffs = swap_decoder(args.run, args.model_dir, check_only=args.check)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if diffs:
        print(f"{args.run} changes the tokens of {args.model_dir} (nothing copied):", file=sys.stderr)
        for d in diffs:
            print(f"  {d}", file=sys.stderr)
        return 1
    done = "checked only" if args.check else f"decoder copied into {args.model_dir}"
    print(f"encoder and codebooks bit-identical; {done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
