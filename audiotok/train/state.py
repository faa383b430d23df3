"""Resumable training state: everything but the inference weights, in one file written atomically."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from audiotok.utils import atomic_path


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: str | os.PathLike, **state) -> Path:
    """``torch.save`` of a dict of state_dicts/values (model, discriminators, optimizers, schedulers, step,
    sampler position, RNG), atomically. Internal to training; inference checkpoints are safetensors."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_training_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A :func:`save_training_state` file, read with ``weights_only=True`` (numpy arrays allowed: the RNG state
    holds one), so that a ``last.pt`` from elsewhere cannot run code."""
    from audiotok.checkpoint import load_pickled

    return load_pickled(path, map_location=map_location, numpy_arrays=True)


def gather_rng_states() -> list[dict]:
    """Every rank's RNG state (rank order); a plain run gives a list of one."""
    import torch.distributed as dist

    state = rng_state()
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return gathered


def save_checkpoint(path: str | os.PathLike, step: int, objects: dict, is_main: bool, **extra) -> None:
    """Collective: gather RNG states, then rank 0 writes ``{step, <name>: obj.state_dict(), rng, **extra}``."""
    rngs = gather_rng_states()
    states = {k: o.state_dict() for k, o in objects.items()}  # on every rank: sharded (FSDP) state is a collective
    if is_main:
        save_training_state(path, step=step, rng=rngs, **states, **extra)


def resume_checkpoint(path: str | os.PathLike, objects: dict, rank: int = 0) -> dict | None:
    """Load a :func:`save_checkpoint` file into ``objects`` and this rank's RNG; returns the raw state (or None
    when there is no file)."""
    path = Path(path)
    if not path.exists():
        return None
    state = load_training_state(path)
    for name, obj in objects.items():
        obj.load_state_dict(state[name])
    rngs = state["rng"]
    set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return state
