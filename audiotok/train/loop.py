"""One supervised training loop for the single-loss recipes (ASR/Whisper, semantic tokenizer, ASR adapters, TTS LM
and flow, speaker encoder): AdamW + warm-up/cosine, gradient clipping, bf16 autocast on CUDA, DDP-ready, resume from
``last.pt`` (model, optimiser, schedule, sampler position, RNG, best metric), periodic logging, validation with
best-checkpoint selection, and saves. (The GAN recipes, with two optimisers, have their own loop.)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from audiotok.config import to_dict
from audiotok.train.distributed import DistInfo, barrier, bf16_autocast, broadcast_object
from audiotok.train.fsdp import FullModelState, FullOptimizerState, is_sharded
from audiotok.train.logging import TrainLogger
from audiotok.train.schedule import cosine_schedule
from audiotok.train.state import resume_checkpoint, save_checkpoint


@dataclass
class LoopConfig:
    """The ``loop:`` section of every recipe config: optimiser, schedule, length, intervals, precision. The GAN loop
    reads the same section for its two optimisers (generator and discriminators share these settings)."""

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20000
    min_lr_factor: float = 0.0  # the cosine decays to lr * min_lr_factor
    grad_clip: float = 1.0  # 0 = off
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    bf16: bool = True  # autocast on CUDA
    cpu_bf16: bool = False  # autocast on CPUs with native bf16 (audiotok.train.distributed.bf16_autocast)
    patience: int = 0  # stop after this many validations without a better selection metric (0 = never)


@dataclass
class Selection:
    """Best-checkpoint selection and early stopping on one validation metric (lower is better); its state
    (``best``, ``stale``: validations since the last improvement) is kept in ``last.pt``."""

    metric: str | None
    patience: int = 0
    best: float = math.inf
    stale: int = 0

    @classmethod
    def resumed(cls, metric: str | None, patience: int, state: dict | None) -> Selection:
        state = state or {}
        return cls(metric, patience, state.get("best", math.inf), state.get("stale", 0))

    def update(self, metrics: dict) -> bool:
        """Record one validation; True when it is the best so far (then save into ``best/``)."""
        if self.metric is None:
            return False
        value = float(metrics.get(self.metric, math.inf))
        if value < self.best:
            self.best, self.stale = value, 0
            return True
        self.stale += 1
        return False

    @property
    def exhausted(self) -> bool:
        """Whether patience ran out (training should stop)."""
        return self.patience > 0 and self.stale >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "stale": self.stale}


def save_best(out_dir: Path, step: int, metrics: dict, save: Callable[[Path], None]) -> None:
    """Write the inference files into ``out_dir/best`` with the validation metrics that chose them."""
    (out_dir / "best").mkdir(parents=True, exist_ok=True)
    save(out_dir / "best")
    (out_dir / "best" / "metrics.json").write_text(json.dumps({"step": step, **metrics}, default=float))


def run_loop(
    cfg: LoopConfig,
    info: DistInfo,
    out_dir: Path,
    model: torch.nn.Module,
    loss_fn: Callable[[dict], tuple[torch.Tensor, dict] | None],
    loader,
    sampler,
    save_fn: Callable[[Path], None],
    validate_fn: Callable[[], dict] | None = None,
    full_config=None,
    param_groups: list | None = None,
    after_step: Callable[[int, float], None] | None = None,
    select_on: str | None = None,
) -> int:
    """Train ``model`` with ``loss_fn(batch) -> (loss, logs)`` (which should call the DDP-wrapped model; ``None``
    skips the batch) over ``loader`` (batches from ``sampler``; ``loader.dataset.set_epoch`` is called when it
    exists) until ``cfg.max_steps``. ``save_fn(dir)`` writes the inference files (rank 0) into ``out_dir`` at every
    save, and into ``out_dir/best`` whenever the validation metric ``select_on`` (lower is better) improves.

    Under FSDP (``model`` holds modules sharded by :mod:`audiotok.train.fsdp`) ``validate_fn`` and ``save_fn`` run
    on every rank (rank 0 writes; ``save_fn`` gathers the full weights with ``fsdp.full_state_dict``) and
    ``last.pt`` holds full state dicts.

    ``param_groups``: optimiser groups (default: every parameter that requires grad); ``after_step(step, lr)`` runs
    after each optimiser step (proximal updates, rank budgets). Returns the final step."""
    device = info.device
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = param_groups if param_groups is not None else trainable
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = cosine_schedule(opt, cfg.max_steps, cfg.warmup_steps, cfg.min_lr_factor)
    sharded = is_sharded(model)  # FSDP: forwards and state dicts are collectives, so every rank takes part
    model_state, opt_state = (FullModelState(model), FullOptimizerState(model, opt)) if sharded else (model, opt)
    objects = {"model": model_state, "opt": opt_state, "sched": sched, "sampler": sampler}
    state = resume_checkpoint(out_dir / "last.pt", objects, info.rank)
    step = state["step"] if state else 0
    selection = Selection.resumed(select_on, cfg.patience, state)
    amp = bf16_autocast(device, cfg.bf16, cfg.cpu_bf16)
    logger = TrainLogger(out_dir, enabled=info.is_main)
    model.train()
    t_last, consumed, stop = time.time(), sampler.batches_done, selection.exhausted
    while step < cfg.max_steps and not stop:
        epoch = sampler.epoch
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        for batch in loader:
            consumed += 1
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with amp:
                out = loss_fn(batch)
            if out is None:
                continue
            loss, logs = out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip or float("inf"))
            opt.step()
            if after_step is not None:
                after_step(step, sched.get_last_lr()[0])
            sched.step()
            step += 1
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"non-finite loss at step {step}")
            if info.is_main and (step % cfg.log_every == 0 or step == 1):
                now = time.time()
                per_step = (now - t_last) / (cfg.log_every if step > 1 else 1)
                logger.scalars(
                    step,
                    {
                        "loss": loss.detach(),
                        **logs,
                        "grad_norm": grad_norm,
                        "lr": sched.get_last_lr()[0],
                        "s_per_step": per_step,
                    },
                )
                t_last = now
            if validate_fn is not None and step % cfg.valid_every == 0:
                if info.is_main or sharded:
                    model.eval()
                    metrics = validate_fn()
                    model.train()
                    improved = selection.update(metrics)
                    if sharded:  # rank 0 decides for all
                        improved = broadcast_object(improved)
                    if info.is_main:
                        logger.scalars(step, metrics, prefix="valid")
                    if improved and info.is_main:
                        save_best(out_dir, step, metrics, save_fn)
                    elif improved:  # FSDP: gathering the weights is a collective
                        save_fn(out_dir / "best")
                stop = broadcast_object(selection.exhausted)  # rank 0 validated: it decides for every rank
                barrier()
            if step % cfg.save_every == 0 or step >= cfg.max_steps or stop:
                sampler_state = {**sampler.state_dict(), "epoch": epoch, "batches_done": consumed}
                saved = {k: v for k, v in objects.items() if k != "sampler"}
                extra = {"config": to_dict(full_config)} if full_config is not None else {}
                save_checkpoint(
                    out_dir / "last.pt", step, saved, info.is_main, sampler=sampler_state, **selection.state(), **extra
                )
                if info.is_main or sharded:
                    save_fn(out_dir)
                barrier()
            if step >= cfg.max_steps or stop:
                break
        else:
            consumed = 0
    if stop and info.is_main:
        print(f"early stop at step {step}: {selection.metric} did not improve in {cfg.patience} validations")
    logger.close()
    return step
