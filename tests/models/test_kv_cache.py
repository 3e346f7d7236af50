"""Ring KV cache: slot arithmetic, masks, in-place and functional writes agree, fixed allocation."""

from __future__ import annotations

import torch

from engine.models.kv_cache import RingKVCache, history_mask, ring_slots, slot_mask, write_slot


def test_ring_slots_wrap_after_keyframe_prefix() -> None:
    pos = torch.tensor([0, 4, 5, 11, 1000])
    assert ring_slots(pos, 3, 5).tolist() == [3, 7, 3, 4, 3]


def test_slot_mask_follows_position_and_keyframe_bits() -> None:
    kv = torch.tensor([[True, False], [False, False]])
    m = slot_mask(torch.tensor([1, 9]), kv, 4)
    assert m.tolist() == [
        [True, False, True, True, False, False],
        [False, False, True, True, True, True],
    ]


def test_history_mask_excludes_the_slot_being_replaced() -> None:
    kv = torch.tensor([[False], [True], [False]])
    m = history_mask(torch.tensor([0, 2, 7]), kv, 4)
    assert m.tolist() == [
        [False, False, False, False, False],  # position 0: no history yet
        [True, True, True, False, False],  # slots of positions 0, 1
        [False, True, True, True, False],  # positions 4, 5, 6 (slot 3 held position 3, now evicted)
    ]


def test_inplace_and_functional_writes_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    cache = torch.randn(3, 2, 6, 4, generator=gen)
    new = torch.randn(3, 2, 1, 4, generator=gen)
    slot = torch.tensor([5, 0, 2])
    functional = write_slot(cache, slot, new, inplace=False)
    assert not torch.equal(functional, cache)
    same = write_slot(cache, slot, new, inplace=True)
    assert same is cache
    torch.testing.assert_close(functional, cache, rtol=0, atol=0)
    for b, s in enumerate(slot.tolist()):
        torch.testing.assert_close(cache[b, :, s], new[b, :, 0], rtol=0, atol=0)


def test_cache_update_keeps_buffers_and_evicts_oldest() -> None:
    c = RingKVCache(n_layer=2, batch=2, n_head=1, head_dim=2, context=3, n_keyframe_slots=1)
    k_ptr = c.k.data_ptr()
    for p in range(5):
        val = torch.full((2, 2, 1, 1, 2), float(p + 1))
        c.update(torch.tensor([p, p]), val, val * 10)
    assert c.k.data_ptr() == k_ptr
    # Positions 2, 3, 4 remain, at slots 1 + p % 3 = 3, 1, 2.
    assert c.k[0, 0, 0, 1:, 0].tolist() == [4.0, 5.0, 3.0]
    assert c.v[1, 1, 0, 1:, 0].tolist() == [40.0, 50.0, 30.0]
    assert c.nbytes_per_performer() == 2 * 2 * 1 * 4 * 2 * 4
    c.set_keyframes(torch.ones(2, 1, 1, 1, 2), torch.ones(2, 1, 1, 1, 2), torch.tensor([[True]]), torch.tensor([1]))
    assert c.kv_mask.tolist() == [[False], [True]]
    assert c.mask(torch.tensor([0, 0])).tolist() == [[False, True, False, False], [True, True, False, False]]
    c.reset(torch.tensor([1]))
    assert c.kv_mask.tolist() == [[False], [False]]
    assert float(c.k[:, 1].abs().sum()) == 0.0 and float(c.k[:, 0].abs().sum()) > 0
