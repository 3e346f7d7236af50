"""Token sampling: greedy, top-k support, reproducibility with an explicit generator."""

from __future__ import annotations

import pytest
import torch

from engine.models.sampling import sample_tokens


def test_greedy_and_top1() -> None:
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_tokens(logits, temperature=0), logits.argmax(-1))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(sample_tokens(logits, temperature=1.5, top_k=1, generator=g), logits.argmax(-1))


def test_top_k_stays_in_support_and_generator_reproduces() -> None:
    logits = torch.randn(64, 20, generator=torch.Generator().manual_seed(2))
    top3 = torch.topk(logits, 3, dim=-1).indices
    a = sample_tokens(logits, 1.0, 3, torch.Generator().manual_seed(3))
    b = sample_tokens(logits, 1.0, 3, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert bool((top3 == a.unsqueeze(1)).any(dim=1).all())
    c = sample_tokens(logits, 1.0, None, torch.Generator().manual_seed(4))
    assert not torch.equal(a, c)  # 64 draws over 20 tokens: equal only with negligible probability


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample_tokens(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        sample_tokens(torch.zeros(1, 3), top_k=0)
    with pytest.raises(ValueError, match=r"\[B, V\]"):
        sample_tokens(torch.zeros(3))


def test_repeat_guard_masks_exactly_the_token_of_a_full_run() -> None:
    from engine.models.sampling import block_repeats

    logits = torch.zeros(5, 6)
    recent = torch.tensor([
        [4, 2, 2, 2],    # 2 drawn 3 times in a row: masked at max_repeat 3
        [2, 2, 1, 2],    # run of 1: nothing masked
        [-1, 3, 3, 3],   # 3 times in a row after the start: masked
        [-1, -1, -1, -1],  # nothing drawn yet: nothing masked
        [5, 5, 5, 5],    # a longer run (guard switched on late): masked
    ])
    out = block_repeats(logits, recent, 3)
    masked = torch.isinf(out)
    expect = torch.zeros(5, 6, dtype=torch.bool)
    expect[0, 2] = expect[2, 3] = expect[4, 5] = True
    assert torch.equal(masked, expect)
    assert torch.equal(logits, torch.zeros(5, 6))  # the input is not changed
    # At max_repeat 4 only the row with four equal drawn tokens; at 1 every row's last drawn token.
    assert torch.equal(torch.isinf(block_repeats(logits, recent, 4)).nonzero(), torch.tensor([[4, 5]]))
    assert torch.equal(torch.isinf(block_repeats(logits, recent, 1)).nonzero(),
                       torch.tensor([[0, 2], [1, 2], [2, 3], [4, 5]]))
    # Off: the very same tensor back.
    assert block_repeats(logits, recent, None) is logits and block_repeats(logits, recent, 0) is logits


def test_repeat_guard_changes_the_draw_only_where_it_must() -> None:
    from engine.models.sampling import block_repeats

    logits = torch.full((2, 4), -5.0)
    logits[:, 1] = 20.0  # token 1 nearly certain
    recent = torch.tensor([[1, 1], [0, 1]])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        tok = sample_tokens(block_repeats(logits, recent, 2), 1.0, None, g)
        assert int(tok[0]) != 1 and int(tok[1]) == 1
    assert int(sample_tokens(block_repeats(logits, recent, 2), temperature=0)[0]) != 1  # greedy too


def test_repeat_guard_bad_arguments() -> None:
    from engine.models.sampling import block_repeats

    with pytest.raises(ValueError, match="max_repeat"):
        block_repeats(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="needs that many"):
        block_repeats(torch.zeros(1, 3), torch.zeros(1, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\[B, R\]"):
        block_repeats(torch.zeros(2, 3), torch.zeros(1, 3, dtype=torch.long), 2)
