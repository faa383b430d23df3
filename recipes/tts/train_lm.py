"""Train the TTS LM (text -> semantic tokens) on utterances tokenized by the semantic tokenizer.

    python recipes/tts/train_lm.py --config recipes/tts/configs/lm-tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/tts/train_lm.py --config recipes/tts/configs/lm-small.yaml

Data: a manifest per split; the first run tokenizes it with ``semantic_tokenizer`` into ``<out_dir>/tokens-*.jsonl``
(resumable cache; or imports ``data.train_tokens``/``valid_tokens``, the same tokenizer's ``audiotok encode``
output) and trains the text BPE on the training texts (``<out_dir>/tokenizer``; reused on resume).
``init_tts=FOLDER`` fine-tunes a trained TTS LM instead (its tokenizer and architecture; e.g. on new data).
Batches are bucketed by length under ``batch_tokens`` padded tokens; a prompt of the same speaker is prepended with
probability ``prompt_prob``. DDP (or FSDP with ``fsdp=true``, for large configs), bf16 on GPU, resume from
``last.pt``, TensorBoard, validation loss and speech token accuracy; every save writes the standard HF directory ``<out_dir>/lm`` (``TTSLM.from_pretrained``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from audiotok.config import config_from_args, save_config
from audiotok.data.sampler import DurationBatchSampler
from audiotok.train import barrier, cleanup_distributed, fsdp, setup_distributed
from audiotok.train.loop import LoopConfig, run_loop
from tts.data import PairDataset, TokenSplits, cache_tokens, read_tokens
from tts.lm import TTSLM, TTSLMConfig, lm_loss
from tts.lm_metrics import teacher_forced_metrics
from tts.tokenizer import TTSTokenizer


@dataclass
class LMData(TokenSplits):
    batch_tokens: int = 8000  # tokens per batch and process (padded, or packed when pack_tokens > 0)
    pack_tokens: int = 0  # > 0: pack sequences into rows of this many tokens (no padding waste); 0: one per row
    prompt_prob: float = 0.5
    text_vocab_size: int = 4000
    n_valid: int = 256


@dataclass
class LMTrainConfig:
    model: TTSLMConfig = field(default_factory=TTSLMConfig)
    data: LMData = field(default_factory=LMData)
    loop: LoopConfig = field(default_factory=LoopConfig)
    semantic_tokenizer: str = "semantic"  # bundled name or checkpoint (SemanticTokenizer)
    init_llm: str | None = None  # a local pretrained LLM directory to start from (its tokenizer replaces our BPE)
    init_tts: str | None = None  # fine-tune one of our trained TTS LMs (a TTS folder's lm/): weights, tokenizer, config
    out_dir: str = "runs/tts-lm"
    seed: int = 0
    device: str = "auto"
    fsdp: bool = False  # under torchrun: shard parameters, gradients and optimiser state (FSDP2) instead of DDP


def _prepare(cfg: LMTrainConfig, out: Path, is_main: bool) -> TTSTokenizer:
    """Token caches and the text BPE, made by rank 0 once."""
    if is_main:
        cache_tokens(cfg.semantic_tokenizer, cfg.data, out, cfg.model.n_speech)
        if not (out / "tokenizer" / "tokenizer.json").exists():
            if cfg.init_tts:
                tok = TTSTokenizer.from_pretrained(cfg.init_tts, cfg.model.n_speech)
            elif cfg.init_llm:
                tok = TTSTokenizer.from_llm(cfg.init_llm, cfg.model.n_speech)
            else:
                texts = [r["text"] for r in read_tokens(out / "tokens-train.jsonl")]
                tok = TTSTokenizer.build(texts, cfg.model.n_speech, cfg.data.text_vocab_size)
            tok.save(out / "tokenizer")
    barrier()
    return TTSTokenizer.from_pretrained(out / "tokenizer", cfg.model.n_speech)


def train(cfg: LMTrainConfig) -> dict:
    if cfg.init_llm and cfg.init_tts:
        raise ValueError("init_llm and init_tts exclude each other")
    init = TTSLM.from_pretrained(cfg.init_tts) if cfg.init_tts else None
    if init is not None:
        cfg = replace(cfg, model=init.config)  # the architecture is the trained model's
    # the LM's own config names the tokenizer whose codes it speaks (saved with its weights)
    cfg = replace(cfg, model=replace(cfg.model, semantic_tokenizer=cfg.semantic_tokenizer))
    info = setup_distributed(cfg.device)
    device, out = info.device, Path(cfg.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    tok = _prepare(cfg, out, info.is_main)
    torch.manual_seed(cfg.seed)
    if init is not None:
        lm = init.to(device)
    else:
        lm = (TTSLM.from_llm(cfg.init_llm, cfg.model) if cfg.init_llm else TTSLM(cfg.model, tok)).to(device)
    dataset = PairDataset(read_tokens(out / "tokens-train.jsonl"), tok, cfg.data.prompt_prob, cfg.seed)
    # a prompt can double a sequence: budget with twice the plain length
    sampler = DurationBatchSampler(
        [2 * n for n in dataset.lengths()],
        cfg.data.batch_tokens,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=partial(lm.collate, pack_tokens=cfg.data.pack_tokens), num_workers=0
    )
    sharded = info.distributed and cfg.fsdp
    objective = lm.objective()  # the wrapper's forward must cover the whole loss (DDP/FSDP hooks)
    if sharded:  # each decoder layer is one FSDP unit; embeddings and head go with the root
        net = fsdp.shard(objective, lm.model.model.layers, device)
        if info.is_main:
            print(f"FSDP: {len(lm.model.model.layers)} decoder layers + root sharded over {info.world_size} ranks")
    else:
        net = DDP(objective) if info.distributed else objective

    def loss_fn(batch):
        return lm_loss(net, batch)

    def save(folder: Path) -> None:  # rank 0, or every rank under FSDP (gathering the shards is a collective)
        state = fsdp.full_state_dict(lm.model) if sharded else None
        if info.is_main:
            lm.save_pretrained(folder / "lm", state_dict=state)

    valid_records = read_tokens(out / "tokens-valid.jsonl")
    evaluator = net if sharded else objective  # under DDP rank 0 validates alone: not through the DDP wrapper
    step = run_loop(
        cfg.loop,
        info,
        out,
        lm,
        loss_fn,
        loader,
        sampler,
        save_fn=save,
        validate_fn=lambda: teacher_forced_metrics(lm, evaluator, valid_records, cfg.data.n_valid, device, cfg.seed),
        full_config=cfg,
    )
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out)}


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(LMTrainConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
