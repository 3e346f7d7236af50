"""Build the genre switch's primer bank (:mod:`engine.models.switch_primer`) of a model folder from training takes.

Every training take is encoded by the model folder's VQ-VAE (so the tokens are the ones its GPT predicts) and every
token may end a primer; its feature is that of the real frame ending the token.
``python3 -m engine.train.primer_bank --data /work/runs/data3 MODEL_DIR`` writes ``MODEL_DIR/primer_bank.safetensors``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from engine.models.conditioning import FRAMES_PER_TOKEN
from engine.models.switch_primer import PRIMER_BANK_FILE, PrimerBank, build_bank, pose_feature
from engine.models.vqvae import VQVAE


def bank_from_sequences(sequences: list, vq: VQVAE, hip_weight: float = 3.0, components: int = 16,
                        max_ends: int = 12288, decoded: bool = False) -> PrimerBank:
    """The bank of the sequences' styles (:func:`engine.train.evaluate.style_of_sequence`), tokens by ``vq``.
    ``decoded``: each end's feature is that of the frame ``vq`` decodes from the take's tokens (what a primed
    switch shows, under the take's own beat features for a beat-conditioned decoder) instead of the real frame."""
    from engine.models.conditioning import COND_DIM, decoder_beat_features, sequence_conditions
    from engine.train.evaluate import style_of_sequence

    takes: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for s in sequences:
        n = (len(s.upper) // FRAMES_PER_TOKEN) * FRAMES_PER_TOKEN
        if n == 0:
            continue
        with torch.inference_mode():
            iu, idn = vq.encode(torch.from_numpy(np.ascontiguousarray(s.upper[None, :n], np.float32)),
                                torch.from_numpy(np.ascontiguousarray(s.lower[None, :n], np.float32)))
        last = slice(FRAMES_PER_TOKEN - 1, n, FRAMES_PER_TOKEN)
        if decoded:
            beat = None
            if vq.cfg.beat_dim:
                m = s.music
                cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, n // FRAMES_PER_TOKEN)
                beat = torch.from_numpy(decoder_beat_features(cond[:, COND_DIM - 2 * FRAMES_PER_TOKEN :]))
                beat = beat.reshape(1, n, -1)
            with torch.inference_mode():
                du, dd = vq.decode(iu, idn, beat)
            feat = pose_feature(du[0].numpy()[last], dd[0].numpy()[last], hip_weight)
        else:
            feat = pose_feature(s.upper[last], s.lower[last], hip_weight)
        takes.setdefault(style_of_sequence(s), []).append((iu[0].numpy(), idn[0].numpy(), feat))
    if not takes:
        raise ValueError("no sequences to build a primer bank from")
    return build_bank(takes, hip_weight, components, max_ends)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from engine.models.vqvae import load_vqvae
    from engine.train.dataset import build_sequences, load_packed

    ap = argparse.ArgumentParser(prog="python -m engine.train.primer_bank", description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", type=Path, help="the model folder (its VQ-VAE encodes the takes; the bank goes there)")
    ap.add_argument("--data", type=Path, required=True, help="packed training data (train.npz) or a CMU BVH folder")
    ap.add_argument("--hip-weight", type=float, default=3.0, help="weight of the hips' orientation in the match")
    ap.add_argument("--components", type=int, default=16, help="main components the features are stored on")
    ap.add_argument("--max-ends", type=int, default=12288, help="most primer ends per style (evenly spaced)")
    ap.add_argument("--decoded", action="store_true",
                    help="match on the frames the VQ-VAE decodes from the tokens (what a switch shows), not real ones")
    args = ap.parse_args(argv)
    try:
        torch.set_num_threads(1)
        packed = args.data / "train.npz"
        seqs = load_packed(packed) if packed.is_file() else build_sequences(args.data, "train")
        bank = bank_from_sequences(seqs, load_vqvae(args.model_dir),
                                   args.hip_weight, args.components, args.max_ends, args.decoded)
        bank.save(args.model_dir / PRIMER_BANK_FILE)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{st} {len(sb.up)} tokens" for st, sb in sorted(bank.styles.items()))
    print(f"primer bank written to {args.model_dir / PRIMER_BANK_FILE}: {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
