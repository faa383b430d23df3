"""The shared supervised loop's best-checkpoint selection and early stopping (``loop.patience``)."""

from __future__ import annotations

import json

import torch
from torch.utils.data import DataLoader

from audiotok.data.sampler import DurationBatchSampler
from audiotok.train.distributed import DistInfo
from audiotok.train.loop import LoopConfig, Selection, run_loop


def _run(tmp_path, scores: list[float], patience: int, max_steps: int = 20) -> tuple[int, list[int]]:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    data = [{"x": torch.randn(2)} for _ in range(8)]
    sampler = DurationBatchSampler([1.0] * len(data), 2.0, seed=0)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=lambda b: {"x": torch.stack([d["x"] for d in b])})
    calls = iter(scores)
    saved: list[int] = []

    def loss_fn(batch):
        return model(batch["x"]).pow(2).mean(), {}

    def save(folder):
        folder.mkdir(parents=True, exist_ok=True)
        if folder.name == "best":
            saved.append(len(saved))

    cfg = LoopConfig(max_steps=max_steps, warmup_steps=0, valid_every=1, save_every=1, log_every=100, patience=patience)
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    step = run_loop(
        cfg, info, tmp_path, model, loss_fn, loader, sampler, save, lambda: {"m": next(calls)}, select_on="m"
    )
    return step, saved


def test_patience_stops_after_that_many_validations_without_improvement_and_keeps_the_best(tmp_path):
    step, saved = _run(tmp_path, [3.0, 2.0, 2.5, 2.1, 2.2, 1.0, 0.5], patience=3)
    assert step == 5  # best at step 2; steps 3, 4, 5 did not improve
    assert len(saved) == 2  # best/ written at steps 1 and 2
    assert json.loads((tmp_path / "best" / "metrics.json").read_text()) == {"step": 2, "m": 2.0}
    # resuming a run whose patience ran out trains no further
    again, _ = _run(tmp_path, [9.0], patience=3)
    assert again == 5


def test_without_patience_the_loop_runs_to_max_steps(tmp_path):
    step, _ = _run(tmp_path, [float(s) for s in range(10)], patience=0, max_steps=6)
    assert step == 6


def test_selection_state_round_trips():
    s = Selection("m", patience=2)
    assert s.update({"m": 1.0}) and not s.update({"m": 1.0}) and not s.exhausted
    assert not s.update({}) and s.exhausted  # a missing metric counts as no improvement
    r = Selection.resumed("m", 2, s.state())
    assert (r.best, r.stale, r.exhausted) == (1.0, 2, True)
