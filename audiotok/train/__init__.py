"""Small shared training helpers: distributed setup, resumable state, logging, schedules."""

from audiotok.train.distributed import DistInfo, barrier, cleanup_distributed, setup_distributed, unwrap
from audiotok.train.logging import TrainLogger
from audiotok.train.schedule import cosine_schedule
from audiotok.train.state import (
    load_training_state,
    resume_checkpoint,
    rng_state,
    save_checkpoint,
    save_training_state,
    set_rng_state,
)

__all__ = [
    "DistInfo",
    "TrainLogger",
    "barrier",
    "cleanup_distributed",
    "cosine_schedule",
    "load_training_state",
    "resume_checkpoint",
    "rng_state",
    "save_checkpoint",
    "save_training_state",
    "set_rng_state",
    "setup_distributed",
    "unwrap",
]
