"""Train the TTS LM (text -> semantic tokens) on utterances tokenized by the semantic tokenizer.

    python recipes/tts/train_lm.py --config recipes/tts/configs/lm-tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/tts/train_lm.py --config recipes/tts/configs/lm-small.yaml

Data: a manifest per split; the first run tokenizes it with ``semantic_tokenizer`` into ``<out_dir>/tokens-*.jsonl``
(resumable cache) and trains the text BPE on the training texts (``<out_dir>/tokenizer``; reused on resume).
Batches are bucketed by length under ``batch_tokens`` padded tokens; a prompt of the same speaker is prepended with
probability ``prompt_prob``. DDP, bf16 on GPU, resume from ``last.pt``, TensorBoard, validation loss and speech
token accuracy; every save writes the standard HF directory ``<out_dir>/lm`` (``TTSLM.from_pretrained``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from audiotok.config import load_config, save_config, to_dict
from audiotok.data.sampler import DurationBatchSampler
from audiotok.train import (
    TrainLogger,
    barrier,
    cleanup_distributed,
    cosine_schedule,
    resume_checkpoint,
    save_checkpoint,
    setup_distributed,
)
from tts.data import PairDataset, extract_tokens, read_tokens
from tts.lm import TTSLM, TTSLMConfig
from tts.tokenizer import TTSTokenizer


@dataclass
class LMData:
    train: str = "data/synth-adult/train.jsonl"
    valid: str = "data/synth-adult/valid.jsonl"
    batch_tokens: int = 8000  # padded tokens per batch and process
    prompt_prob: float = 0.5
    text_vocab_size: int = 4000
    n_valid: int = 256


@dataclass
class LMTrainConfig:
    lm: TTSLMConfig = field(default_factory=TTSLMConfig)
    data: LMData = field(default_factory=LMData)
    semantic_tokenizer: str = "semantic"  # bundled name or checkpoint (SemanticTokenizer)
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20000
    grad_clip: float = 1.0
    out_dir: str = "runs/tts-lm"
    seed: int = 0
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    device: str = "auto"
    bf16: bool = True


def _prepare(cfg: LMTrainConfig, out: Path, is_main: bool) -> TTSTokenizer:
    """Token caches and the text BPE, made by rank 0 once."""
    if is_main:
        if not (out / "tokens-train.jsonl.done").exists() or not (out / "tokens-valid.jsonl.done").exists():
            from audiotok.batch import load_tokenizer

            semantic, _ = load_tokenizer(cfg.semantic_tokenizer)
            for split in ("train", "valid"):
                extract_tokens(getattr(cfg.data, split), semantic, out / f"tokens-{split}.jsonl")
                (out / f"tokens-{split}.jsonl.done").touch()
        if not (out / "tokenizer" / "tokenizer.json").exists():
            texts = [r["text"] for r in read_tokens(out / "tokens-train.jsonl")]
            TTSTokenizer.build(texts, cfg.lm.n_speech, cfg.data.text_vocab_size).save(out / "tokenizer")
    barrier()
    return TTSTokenizer.from_pretrained(out / "tokenizer", cfg.lm.n_speech)


def validate(lm: TTSLM, records: list[dict], cfg: LMTrainConfig, device) -> dict:
    data = PairDataset(records[: cfg.data.n_valid], lm.tokenizer, prompt_prob=0.0, seed=cfg.seed)
    lm.eval()
    total, acc, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), 16):
            batch = {
                k: v.to(device) for k, v in lm.collate([data[j] for j in range(i, min(i + 16, len(data)))]).items()
            }
            loss, logs = lm.loss(batch)
            total, acc, n = total + float(loss), acc + float(logs["acc"]), n + 1
    lm.train()
    return {"loss": total / max(n, 1), "acc": acc / max(n, 1)}


def train(cfg: LMTrainConfig) -> dict:
    info = setup_distributed(cfg.device)
    device, out = info.device, Path(cfg.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    tok = _prepare(cfg, out, info.is_main)
    torch.manual_seed(cfg.seed)
    lm = TTSLM(cfg.lm, tok).to(device)
    dataset = PairDataset(read_tokens(out / "tokens-train.jsonl"), tok, cfg.data.prompt_prob, cfg.seed)
    # prompts can double a sequence: budget with twice the plain length
    sampler = DurationBatchSampler(
        [2 * n for n in dataset.lengths()],
        cfg.data.batch_tokens,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=lm.collate, num_workers=0)
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = cosine_schedule(opt, cfg.max_steps, cfg.warmup_steps)
    objects = {"model": lm, "opt": opt, "sched": sched, "sampler": sampler}
    state = resume_checkpoint(out / "last.pt", objects, info.rank)
    step = state["step"] if state else 0
    net = DDP(lm.model) if info.distributed else lm.model
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    logger = TrainLogger(out, enabled=info.is_main)
    valid_records = read_tokens(out / "tokens-valid.jsonl")
    lm.train()
    t_last, consumed = time.time(), sampler.batches_done
    while step < cfg.max_steps:
        epoch = sampler.epoch
        dataset.set_epoch(epoch)
        for batch in loader:
            consumed += 1
            batch = {k: v.to(device) for k, v in batch.items()}
            with amp:
                logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"]
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"non-finite loss at step {step}")
            if info.is_main and (step % cfg.log_every == 0 or step == 1):
                now = time.time()
                valid = labels != -100
                acc = (logits.detach().argmax(-1)[valid] == labels[valid]).float().mean()
                per_step = (now - t_last) / (cfg.log_every if step > 1 else 1)
                logger.scalars(
                    step,
                    {
                        "loss": loss.detach(),
                        "acc": acc,
                        "grad_norm": grad_norm,
                        "lr": sched.get_last_lr()[0],
                        "s_per_step": per_step,
                    },
                )
                t_last = now
            if info.is_main and step % cfg.valid_every == 0:
                logger.scalars(step, validate(lm, valid_records, cfg, device), prefix="valid")
            if step % cfg.save_every == 0 or step >= cfg.max_steps:
                sampler_state = {**sampler.state_dict(), "epoch": epoch, "batches_done": consumed}
                saved = {k: v for k, v in objects.items() if k != "sampler"}
                save_checkpoint(out / "last.pt", step, saved, info.is_main, sampler=sampler_state, config=to_dict(cfg))
                if info.is_main:
                    lm.save_pretrained(out / "lm")
                barrier()
            if step >= cfg.max_steps:
                break
        else:
            consumed = 0
    logger.close()
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    return train(load_config(LMTrainConfig, args.config, args.overrides))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
