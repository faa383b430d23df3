"""Duration-bucketed batch sampler bounded by seconds per batch, DDP-aware, reproducible and resumable."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class DurationBatchSampler(Sampler[list[int]]):
    """Yields whole batches of indices whose *padded* duration ``len(batch) * max(duration)`` stays within
    ``max_seconds`` (a single item longer than that forms a batch of its own).

    Items are sorted into ``n_buckets`` duration buckets (quantiles), so batches hold similar lengths and little
    padding. The order is a pure function of ``(seed, epoch)``; every item appears exactly once per epoch over
    all ranks, and each rank gets a disjoint share. With ``even_batches`` the number of batches is made a
    multiple of ``world_size`` by splitting the largest batches, so every rank runs the same number of steps (DDP
    would hang otherwise) without dropping or repeating items.

    Resume mid-epoch with :meth:`state_dict` / :meth:`load_state_dict`: the sampler regenerates the epoch's
    batches and skips those already consumed.

    Args:
        durations: seconds per item.
        max_seconds: bound on padded seconds per batch.
        max_items: optional bound on items per batch.
        n_buckets: number of duration buckets.
        shuffle: shuffle items within buckets and the order of batches; False gives a fixed order by duration.
        seed: base seed; the epoch is mixed in.
        rank, world_size: this process's share; default from ``torch.distributed`` when initialised.
        even_batches: equal batch counts on every rank (see above).
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_seconds: float,
        max_items: int | None = None,
        n_buckets: int = 10,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        even_batches: bool = True,
    ):
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        if rank is None or world_size is None:
            dist_ok = torch.distributed.is_available() and torch.distributed.is_initialized()
            world_size = (
                world_size if world_size is not None else (torch.distributed.get_world_size() if dist_ok else 1)
            )
            rank = rank if rank is not None else (torch.distributed.get_rank() if dist_ok else 0)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.durations = torch.as_tensor(list(durations), dtype=torch.float64)
        if len(self.durations) == 0:
            raise ValueError("no items to sample from")
        self.max_seconds = float(max_seconds)
        self.max_items = max_items
        self.n_buckets = max(1, min(n_buckets, len(self.durations)))
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.even_batches = even_batches
        self.epoch = 0
        self.batches_done = 0  # batches of the current epoch already consumed (this rank)
        self._cache: tuple[int, list[list[int]]] | None = None  # (epoch, batches): len() is called often

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch."""
        self.epoch = epoch
        self.batches_done = 0

    def _bucketize(self, g: torch.Generator) -> list[list[int]]:
        # buckets are contiguous slices of the duration order; shuffling breaks ties at random
        jitter = torch.rand(len(self.durations), generator=g, dtype=torch.float64) * 1e-9 if self.shuffle else 0.0
        order = torch.argsort(self.durations + jitter, stable=True)
        buckets = [b.tolist() for b in torch.tensor_split(order, self.n_buckets)]
        if self.shuffle:
            buckets = [[b[i] for i in torch.randperm(len(b), generator=g).tolist()] for b in buckets]
        return [b for b in buckets if b]

    def _pack(self, bucket: list[int]) -> list[list[int]]:
        batches, cur, cur_max = [], [], 0.0
        for i in bucket:
            d = float(self.durations[i])
            new_max = max(cur_max, d)
            full = self.max_items is not None and len(cur) >= self.max_items
            if cur and (new_max * (len(cur) + 1) > self.max_seconds or full):
                batches.append(cur)
                cur, new_max = [], d
            cur.append(i)
            cur_max = new_max
        if cur:
            batches.append(cur)
        return batches

    def _even_out(self, batches: list[list[int]]) -> list[list[int]]:
        while len(batches) % self.world_size:
            sizes = [len(b) for b in batches]
            k = max(range(len(batches)), key=lambda j: sizes[j])
            if sizes[k] < 2:
                raise ValueError(
                    f"cannot give {self.world_size} ranks equal batch counts: only {len(batches)} single-item "
                    "batches; use fewer ranks, more data, or even_batches=False"
                )
            b = batches.pop(k)
            batches[k:k] = [b[: len(b) // 2], b[len(b) // 2 :]]
        return batches

    def epoch_batches(self, epoch: int | None = None) -> list[list[int]]:
        """All batches of an epoch for this rank, in order (a pure function of seed, epoch, rank)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        # pack the bucket-ordered items in one run: batches hold similar durations, and small buckets do not
        # leave a trail of part-filled batches behind them
        batches = self._pack([i for bucket in self._bucketize(g) for i in bucket])
        if self.even_batches:
            batches = self._even_out(batches)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        batches = batches[self.rank :: self.world_size]
        self._cache = (epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches()
        start = self.batches_done
        for i in range(start, len(batches)):
            self.batches_done = i + 1
            yield batches[i]
        # a finished epoch moves on, so a plain `for epoch: for batch in loader` loop reshuffles
        self.epoch += 1
        self.batches_done = 0

    def __len__(self) -> int:
        return len(self.epoch_batches()) - self.batches_done

    def state_dict(self, batches_done: int | None = None) -> dict:
        """Where the sampler is. A DataLoader prefetches, so pass the number of batches the training loop has
        actually consumed this epoch as ``batches_done``."""
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done if batches_done is None else batches_done,
            "seed": self.seed,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed or state.get("world_size", self.world_size) != self.world_size:
            raise ValueError("sampler state was saved with another seed or world size; resuming would repeat items")
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])
