"""One supervised training loop for the single-loss recipes (TTS LM, flow): AdamW + warm-up/cosine, gradient
clipping, bf16 autocast on CUDA, DDP-ready, resume from ``last.pt`` (model, optimiser, schedule, sampler position,
RNG), periodic logging, validation and saves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from audiotok.config import to_dict
from audiotok.train.distributed import DistInfo, barrier
from audiotok.train.logging import TrainLogger
from audiotok.train.schedule import cosine_schedule
from audiotok.train.state import resume_checkpoint, save_checkpoint


@dataclass
class LoopConfig:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20000
    grad_clip: float = 1.0
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    bf16: bool = True


def run_loop(
    cfg: LoopConfig,
    info: DistInfo,
    out_dir: Path,
    model: torch.nn.Module,
    loss_fn: Callable[[dict], tuple[torch.Tensor, dict]],
    loader,
    sampler,
    save_fn: Callable[[Path], None],
    validate_fn: Callable[[], dict] | None = None,
    full_config=None,
) -> int:
    """Train ``model`` with ``loss_fn(batch) -> (loss, logs)`` (which should call the DDP-wrapped model) over
    ``loader`` (batches from ``sampler``; ``loader.dataset.set_epoch`` is called when it exists) until
    ``cfg.max_steps``. ``save_fn(out_dir)`` writes the inference files (rank 0). Returns the final step."""
    device = info.device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = cosine_schedule(opt, cfg.max_steps, cfg.warmup_steps)
    objects = {"model": model, "opt": opt, "sched": sched, "sampler": sampler}
    state = resume_checkpoint(out_dir / "last.pt", objects, info.rank)
    step = state["step"] if state else 0
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    logger = TrainLogger(out_dir, enabled=info.is_main)
    model.train()
    t_last, consumed = time.time(), sampler.batches_done
    while step < cfg.max_steps:
        epoch = sampler.epoch
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        for batch in loader:
            consumed += 1
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with amp:
                loss, logs = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
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
            if info.is_main and validate_fn is not None and step % cfg.valid_every == 0:
                model.eval()
                logger.scalars(step, validate_fn(), prefix="valid")
                model.train()
            if step % cfg.save_every == 0 or step >= cfg.max_steps:
                sampler_state = {**sampler.state_dict(), "epoch": epoch, "batches_done": consumed}
                saved = {k: v for k, v in objects.items() if k != "sampler"}
                extra = {"config": to_dict(full_config)} if full_config is not None else {}
                save_checkpoint(out_dir / "last.pt", step, saved, info.is_main, sampler=sampler_state, **extra)
                if info.is_main:
                    save_fn(out_dir)
                barrier()
            if step >= cfg.max_steps:
                break
        else:
            consumed = 0
    logger.close()
    return step
