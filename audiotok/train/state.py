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
    # our own files, written by save_training_state: RNG states need full unpickling
    return torch.load(str(path), map_location=map_location, weights_only=False)
