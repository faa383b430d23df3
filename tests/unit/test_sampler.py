from __future__ import annotations

import random

import pytest

from audiotok.data.sampler import DurationBatchSampler


def _durations(n=203, seed=0):
    rng = random.Random(seed)
    return [round(rng.uniform(0.5, 12.0), 2) for _ in range(n)]


def _padded_seconds(batch, durations):
    return len(batch) * max(durations[i] for i in batch)


def test_every_item_once_and_bounded():
    d = _durations()
    s = DurationBatchSampler(d, max_seconds=40.0, seed=3)
    batches = list(s)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(d)))
    assert all(_padded_seconds(b, d) <= 40.0 for b in batches)
    # bucketing keeps padding low: padded seconds within 25% of the real seconds
    assert sum(_padded_seconds(b, d) for b in batches) < 1.25 * sum(d)


def test_long_item_gets_its_own_batch_and_max_items():
    d = [1.0] * 10 + [50.0]
    batches = list(DurationBatchSampler(d, max_seconds=20.0, max_items=4, seed=0))
    assert [10] in batches
    assert all(len(b) <= 4 for b in batches)


def test_reproducible_from_seed_and_epoch():
    d = _durations()
    a = DurationBatchSampler(d, 30.0, seed=1).epoch_batches(epoch=2)
    b = DurationBatchSampler(d, 30.0, seed=1).epoch_batches(epoch=2)
    c = DurationBatchSampler(d, 30.0, seed=1).epoch_batches(epoch=3)
    e = DurationBatchSampler(d, 30.0, seed=2).epoch_batches(epoch=2)
    assert a == b and a != c and a != e


def test_iteration_advances_epoch():
    s = DurationBatchSampler(_durations(), 30.0, seed=1)
    first, second = list(s), list(s)
    assert first != second and s.epoch == 2


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ddp_shards_are_disjoint_cover_and_equal(world_size):
    d = _durations(101)
    shards = [
        DurationBatchSampler(d, 25.0, seed=7, rank=r, world_size=world_size).epoch_batches(0) for r in range(world_size)
    ]
    sets = [{i for b in shard for i in b} for shard in shards]
    for r in range(world_size):
        for q in range(r + 1, world_size):
            assert not sets[r] & sets[q]
    assert sorted(i for shard in shards for b in shard for i in b) == list(range(len(d)))
    assert len({len(shard) for shard in shards}) == 1  # equal step counts: no DDP hang


def test_uneven_is_allowed_when_asked():
    d = [1.0] * 3
    shards = [DurationBatchSampler(d, 1.0, rank=r, world_size=2, even_batches=False).epoch_batches(0) for r in range(2)]
    assert sorted(len(s) for s in shards) == [1, 2]
    with pytest.raises(ValueError, match="equal batch counts"):
        DurationBatchSampler(d, 1.0, rank=0, world_size=2).epoch_batches(0)


def test_resume_mid_epoch():
    d = _durations()
    s = DurationBatchSampler(d, 30.0, seed=5)
    s.set_epoch(4)
    full = s.epoch_batches()
    it = iter(s)
    consumed = [next(it) for _ in range(7)]
    state = s.state_dict()
    assert state["batches_done"] == 7 and state["epoch"] == 4

    resumed = DurationBatchSampler(d, 30.0, seed=5)
    resumed.load_state_dict(state)
    assert len(resumed) == len(full) - 7
    rest = list(resumed)
    assert consumed + rest == full
    # a trainer that consumed fewer batches than the loader prefetched says so explicitly
    resumed2 = DurationBatchSampler(d, 30.0, seed=5)
    resumed2.load_state_dict(s.state_dict(batches_done=5))
    assert list(resumed2) == full[5:]


def test_state_from_another_world_size_is_refused():
    s = DurationBatchSampler(_durations(), 30.0, seed=5, rank=0, world_size=2)
    with pytest.raises(ValueError, match="world size"):
        DurationBatchSampler(_durations(), 30.0, seed=5).load_state_dict(s.state_dict())
