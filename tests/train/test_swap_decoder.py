"""The decoder swap copies a fine-tuned decoder only when the encoder and codebooks are bit-identical."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from engine.train.swap_decoder import main, swap_decoder, token_differences


def _vq(folder: Path, tensors: dict[str, np.ndarray], tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "vqvae.safetensors"))
    (folder / "vqvae.json").write_text(json.dumps({"tag": tag}))


def _shipped() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"enc_up.w": rng.normal(size=(4, 3)).astype(np.float32),
            "quant_up.codebook": rng.normal(size=(8, 2)).astype(np.float32),
            "dec_up.w": rng.normal(size=(3, 4)).astype(np.float32),
            "dec_down.w": rng.normal(size=(3, 4)).astype(np.float32)}


def test_a_decoder_only_change_is_copied(tmp_path: Path) -> None:
    model, run = tmp_path / "model", tmp_path / "run"
    old = _shipped()
    _vq(model, old, "old")
    new = dict(old, **{"dec_up.w": old["dec_up.w"] + 1, "dec_up.beat.w": np.ones((2, 2), np.float32)})
    _vq(run, new, "new")
    assert swap_decoder(run, model, check_only=True) == []
    assert json.loads((model / "vqvae.json").read_text())["tag"] == "old"  # --check copies nothing
    assert main([str(run), str(model)]) == 0
    assert json.loads((model / "vqvae.json").read_text())["tag"] == "new"
    assert (model / "vqvae.safetensors").read_bytes() == (run / "vqvae.safetensors").read_bytes()


def test_any_change_to_the_tokens_is_refused(tmp_path: Path) -> None:
    model, run = tmp_path / "model", tmp_path / "run"
    old = _shipped()
    _vq(model, old, "old")
    code = old["quant_up.codebook"].copy()
    code[3, 1] = np.nextafter(code[3, 1], np.float32(np.inf))  # one ulp in one codebook entry
    _vq(run, dict(old, **{"quant_up.codebook": code}), "new")
    assert swap_decoder(run, model) == ["quant_up.codebook: values differ"]
    assert json.loads((model / "vqvae.json").read_text())["tag"] == "old"
    assert main([str(run), str(model)]) == 1
    missing = {k: v for k, v in old.items() if k != "enc_up.w"}
    assert token_differences(old, missing) == ["enc_up.w: missing from the new VQ-VAE"]
    assert token_differences(old, {k: v for k, v in old.items() if k != "dec_down.w"}) == [
        "dec_down.w: a decoder tensor was removed"]
    assert main([str(tmp_path / "nowhere"), str(model)]) == 2


def test_a_follower_ships_onto_a_fine_tuned_decoder_but_not_onto_other_tokens(tmp_path: Path) -> None:
    """``ship_follower`` checks the tokens (encoder and codebooks), not the file: a follower trained on the VQ-VAE
    before a decoder fine-tune still ships into the folder holding the fine-tuned decoder."""
    import pytest

    from engine.models.follower import load_follower, save_follower
    from engine.train.train_couple import ship_follower
    from tests.models.test_follower import tiny_follower

    model, src = tmp_path / "model", tmp_path / "follower_run"
    old = _shipped()
    _vq(src, old, "trained on")
    save_follower(tiny_follower(), src)
    (src / "model.json").write_text(json.dumps({"couple": {"follower": "tiny"}}))
    _vq(model, dict(old, **{"dec_down.w": old["dec_down.w"] * 2}), "fine-tuned decoder")
    (model / "model.json").write_text(json.dumps({"name": "m", "couple": {"beat_guidance": {"candidates": 32}}}))
    ship_follower(src, model)
    assert load_follower(model).fcfg == tiny_follower().fcfg
    couple = json.loads((model / "model.json").read_text())["couple"]
    assert couple["weights"] == "float16 on disk" and couple["follower"] == "tiny"
    assert couple["beat_guidance"] == {"candidates": 32}  # the leader's couple setting survives a new follower
    _vq(model, dict(old, **{"enc_up.w": old["enc_up.w"] * 2}), "other tokens")
    with pytest.raises(ValueError, match="another VQ-VAE's tokens"):
        ship_follower(src, model)
