"""`recipes/run.sh` launches every recipe, and every recipe config parses into its recipe's schema."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS = {
    "codec": "recipes/codec/configs/tiny.yaml",
    "whisper": "recipes/whisper/configs/tiny.yaml",
    "semantic": "recipes/semantic/configs/tiny.yaml",
    "speaker": "recipes/speaker/configs/tiny.yaml",
    "asr_s2lora": "recipes/asr_s2lora/configs/tiny.yaml",
    "tts/train_lm": "recipes/tts/configs/lm-tiny.yaml",
    "tts/train_flow": "recipes/tts/configs/flow-tiny.yaml",
    "tts/train_vocoder": "recipes/tts/configs/vocoder-tiny.yaml",
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_run_sh_finds_every_recipe(task):
    env = {**os.environ, "DRY_RUN": "1"}
    out = subprocess.run(
        ["bash", "recipes/run.sh", task, TASKS[task], "loop.max_steps=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script = out.split("--nproc_per_node")[1].split()[1]
    assert (ROOT / script).is_file() and "loop.max_steps=1" in out


def test_run_sh_refuses_an_unknown_task():
    res = subprocess.run(["bash", "recipes/run.sh", "nope", TASKS["codec"]], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "no recipe for task 'nope'" in res.stderr


@pytest.mark.parametrize(
    "config, schema",
    [
        ("recipes/codec/configs/*.yaml", "recipes.codec.train:CodecTrainConfig"),
        ("recipes/whisper/configs/*.yaml", "audiotok.whisper.training:WhisperTrainConfig"),
        ("recipes/semantic/configs/*.yaml", "recipes.semantic.train:SemanticTrainConfig"),
        ("recipes/tts/configs/vocoder-*.yaml", "recipes.tts.train_vocoder:VocoderTrainConfig"),
    ],
)
def test_configs_are_data_in_one_schema(config, schema):
    """Each config loads strictly into its schema, with the shared ``loop:`` section (no flat loop knobs)."""
    import importlib

    import yaml

    from audiotok.config import from_dict

    module, _, name = schema.partition(":")
    cls = getattr(importlib.import_module(module), name)
    paths = sorted(ROOT.glob(config))
    assert paths
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        assert not {"lr", "max_steps", "warmup_steps", "optim", "arch"} & set(raw), path
        cfg = from_dict(cls, raw)
        assert cfg.loop.max_steps > 0, path


def test_s2lora_experiment_methods_build_valid_adapt_configs():
    """Every method row of every S2-LoRA experiment config, with its overrides, loads strictly into AdaptConfig (a
    misspelt override would otherwise fail only after the earlier methods have trained for hours)."""
    import yaml

    from asr.training import AdaptConfig
    from audiotok.config import apply_overrides, from_dict
    from recipes.asr_s2lora.experiment import ExperimentConfig

    paths = sorted(ROOT.glob("recipes/asr_s2lora/configs/*.yaml"))
    checked = 0
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        if "methods" not in raw:
            continue
        cfg = from_dict(ExperimentConfig, raw)
        for method, overrides in cfg.methods.items():
            data = apply_overrides(cfg.adapt, [f"adapter.method={method.split('-')[0]}", *overrides])
            acfg = from_dict(AdaptConfig, data)
            assert acfg.adapter.method == method.split("-")[0], (path, method)
            checked += 1
    assert checked >= 10
