"""The library half of the recipes that train through Whisper's ASR loss (whisper-synth, the semantic tokenizer,
S2-LoRA and its baselines): their config schema, SpecAugment, joined inputs, validation by decoding, the
:class:`ASRTask` that says what differs between them, and :func:`train` — data, front end and augmentation on the
shared training loop (:func:`audiotok.train.loop.run_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from whisper.model import Whisper

from audiotok.config import save_config
from audiotok.data.dataset import AudioDataset, collate_audio
from audiotok.data.manifest import read_manifest
from audiotok.data.sampler import DurationBatchSampler
from audiotok.train import barrier, cleanup_distributed, setup_distributed
from audiotok.train.loop import LoopConfig, run_loop
from audiotok.whisper.decode import transcribe
from audiotok.whisper.loss import WhisperWithCTC
from audiotok.whisper.model import SAMPLE_RATE, WhisperFrontend, load_whisper, run_state, text_unit
from audiotok.whisper.text import encode_text, error_rates, tokenizer_for

HOP = 160  # Whisper's mel hop at 16 kHz


@dataclass
class WhisperArch:
    n_mels: int = 80
    seconds: float = 10.0  # audio context
    n_state: int = 256
    n_head: int = 4
    n_layer: int = 4
    n_text_ctx: int = 128
    n_text_layer: int | None = None  # decoder layers (default: n_layer)


@dataclass
class WhisperData:
    train: str = "data/synth/train.jsonl"
    valid: str = "data/synth/test.jsonl"  # held-out speakers
    batch_seconds: float = 120.0  # padded audio seconds per batch and process
    n_workers: int = 2
    n_valid: int = 64
    # join a batch's short utterances (and their transcripts) into inputs of up to the encoder's context, with
    # concat_gap seconds of silence between: the encoder always sees its whole context, so this is up to ~2x
    # more speech per step on a corpus of 3 s utterances (training only)
    concat: bool = False
    concat_gap: float = 0.2


@dataclass
class SpecAugment:
    n_freq_masks: int = 2
    freq_width: int = 10  # mel bins
    n_time_masks: int = 2
    time_width: int = 40  # frames (10 ms)


@dataclass
class WhisperTrainConfig:
    """The schema every recipe shares: ``model:``, ``data:``, ``loop:`` (the shared loop reads it as it is), plus
    the ASR-loss options."""

    model: WhisperArch = field(default_factory=WhisperArch)
    data: WhisperData = field(default_factory=WhisperData)
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(lr=1e-3, betas=(0.9, 0.999), warmup_steps=500, save_every=500)
    )
    specaug: SpecAugment = field(default_factory=SpecAugment)
    out_dir: str = "runs/whisper-synth"
    seed: int = 0
    device: str = "auto"
    ctc_weight: float = 0.0  # auxiliary character CTC on the encoder output (training only; speeds up alignment)
    token_noise: float = 0.0  # share of the decoder's input text tokens replaced by random ones (training only)
    label_smoothing: float = 0.0
    text_unit: str = "bpe"  # "char": one Whisper token per character (audiotok.whisper.text_unit)
    # start a fresh run from these weights: a Whisper .pt/.safetensors, or a run's last.pt (with its CTC head); an
    # encoder with fewer layers grows to model.n_layer with identity blocks on top (init_whisper_weights)
    init: str | None = None
    guided_attention: float = 0.0  # weight of a diagonal prior on the decoder's cross-attention (training only)
    guided_sigma: float = 0.2  # its width, in fractions of the utterance
    select_on: str = "wer"  # the validation metric that picks <out_dir>/best: "wer" or "cer" (when most words are
    # wrong, as for a weak model on a new domain, CER still moves)


def spec_augment(
    mel: torch.Tensor, mel_lens: torch.Tensor, cfg: SpecAugment, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero random frequency bands and time spans (within each item's valid frames) of (B, n_mels, T)."""
    mel = mel.clone()
    B, n_mels, _ = mel.shape
    for b in range(B):
        for _ in range(cfg.n_freq_masks):
            w = int(torch.randint(0, cfg.freq_width + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, n_mels - w), (1,), generator=generator))
            mel[b, f0 : f0 + w, :] = 0
        n = int(mel_lens[b])
        for _ in range(cfg.n_time_masks):
            w = min(int(torch.randint(0, cfg.time_width + 1, (1,), generator=generator)), n // 5)
            t0 = int(torch.randint(0, max(1, n - w), (1,), generator=generator))
            mel[b, :, t0 : t0 + w] = 0
    return mel


def concat_utterances(
    audio: torch.Tensor, lens: torch.Tensor, texts: list[str], max_len: int, gap: int, fits=lambda text: True
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Join items of a padded batch (B, T) with lengths (B,) in order, first fit, into inputs of at most
    ``max_len`` samples with ``gap`` samples of silence between utterances, while ``fits(joined_text)`` holds.
    -> (audio (B', T'), lens (B',), texts) with B' <= B; an item that fits nowhere stays alone."""
    groups: list[list[int]] = []
    sizes: list[int] = []
    for i in range(len(texts)):
        n = int(lens[i])
        for k, g in enumerate(groups):
            if sizes[k] + gap + n <= max_len and fits(" ".join(texts[j] for j in g + [i])):
                g.append(i)
                sizes[k] += gap + n
                break
        else:
            groups.append([i])
            sizes.append(n)
    out = audio.new_zeros(len(groups), max(sizes))
    for k, g in enumerate(groups):
        t = 0
        for i in g:
            out[k, t : t + int(lens[i])] = audio[i, : int(lens[i])]
            t += int(lens[i]) + gap
    return (
        out,
        torch.tensor(sizes, dtype=lens.dtype, device=lens.device),
        [" ".join(texts[i] for i in g) for g in groups],
    )


def validate(model: Whisper, front: WhisperFrontend, cfg: WhisperTrainConfig, device, features_fn=None) -> dict:
    """Greedy-decoding WER and CER on held-out speakers (``features_fn(mel)``: encoder output to decode from, e.g.
    through a quantizer)."""
    from audiotok.audio import load, resample
    from audiotok.data.dataset import pad_sequences

    model.eval()
    utts = read_manifest(cfg.data.valid)[: cfg.data.n_valid]
    refs, hyps = [], []
    for i in range(0, len(utts), 16):
        chunk = utts[i : i + 16]
        wavs = []
        for u in chunk:
            w, sr = load(u.audio, mono=True)
            wavs.append(resample(w, sr, SAMPLE_RATE))
        wav, lens = pad_sequences(wavs)
        mel = front(wav.to(device), lens.to(device))
        features = None if features_fn is None else features_fn(mel)
        hyps += transcribe(model, mel, audio_features=features)
        refs += [u.text or "" for u in chunk]
    model.train()
    return {**error_rates(refs, hyps), "n": len(refs)}


@dataclass
class ASRTask:
    """What differs between the recipes that train through Whisper's ASR loss (this one, the semantic one)."""

    model: torch.nn.Module  # trained as a whole
    whisper: Whisper  # the Whisper inside it (front end dims, decoding)
    loss: object  # (net, mel, texts, audio_lens) -> (loss, logs dict); audio_lens: 16 kHz samples per item
    save: object  # (out_dir) -> None, writes the inference checkpoints (rank 0)
    validate: object  # (front, cfg, device) -> metrics dict (rank 0)
    param_groups: object = None  # (weight_decay) -> optimiser groups; default: every parameter that requires grad
    after_step: object = None  # (step, lr) -> None, after each optimiser step (proximal steps, AdaLoRA budgets)
    select_on: str | None = None  # the validation metric (lower is better) that picks ``<out_dir>/best``
    # (default: the config's select_on)
    prepare: object = None  # (batches) -> None, once before a fresh start (not on resume); batches yields
    # (mel (B, n_mels, frames), audio_lens) of training batches without SpecAugment (data-dependent inits)


def init_whisper_weights(net: torch.nn.Module, path: str) -> None:
    """Load start weights into ``net`` (a Whisper or a :class:`WhisperWithCTC`) from a Whisper checkpoint or a run's
    ``last.pt`` (whose CTC head is kept when ``net`` has one). A source encoder with fewer layers is grown: its
    blocks fill the first layers and the rest start as identities (attention and MLP output projections zero, so
    the grown model computes exactly what the source did; progressive stacking in the spirit of Gong et al., 2019).
    Every other tensor must match in name and shape."""
    if Path(path).name == "last.pt":
        state = {k.removeprefix("whisper."): v for k, v in run_state(path).items()}
    else:
        state = load_whisper(path).state_dict()
    whisper = net.whisper if isinstance(net, WhisperWithCTC) else net
    ctc = {k.removeprefix("ctc."): state.pop(k) for k in list(state) if k.startswith("ctc.")}
    blocks = whisper.encoder.blocks
    n_src = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks."))
    if n_src > len(blocks):
        raise ValueError(f"{path}: {n_src} encoder layers, more than the {len(blocks)} configured")
    for block in blocks[n_src:]:
        for linear in (block.attn.out, block.mlp[2]):
            torch.nn.init.zeros_(linear.weight)
            torch.nn.init.zeros_(linear.bias)
    own = whisper.state_dict()
    grown = {k: v for k, v in own.items() if k.startswith("encoder.blocks.") and int(k.split(".")[2]) >= n_src}
    whisper.load_state_dict({**state, **grown})
    if ctc and isinstance(net, WhisperWithCTC) and net.ctc is not None:
        net.ctc.load_state_dict(ctc)


def train(cfg: WhisperTrainConfig, task_builder) -> dict:
    """The data, front end and SpecAugment shared by the ASR-loss recipes, on the shared training loop;
    ``task_builder(cfg) -> ASRTask`` says what is trained and how."""
    info = setup_distributed(cfg.device)
    device, out_dir = info.device, Path(cfg.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    torch.manual_seed(cfg.seed)
    task = task_builder(cfg)
    model = task.model.to(device)
    # the sparse alignment-heads buffer breaks DDP's buffer broadcast: keep a dense copy
    task.whisper.register_buffer("alignment_heads", task.whisper.alignment_heads.to_dense(), persistent=False)
    front = WhisperFrontend(task.whisper.dims).to(device)
    dataset = AudioDataset(cfg.data.train, sample_rate=SAMPLE_RATE, on_error="skip")
    context = task.whisper.dims.n_audio_ctx / 50  # seconds of audio the encoder sees
    dataset.utterances = [u for u in dataset.utterances if u.duration <= context and u.text]
    sampler = DurationBatchSampler(
        dataset.durations, cfg.data.batch_seconds, seed=cfg.seed, rank=info.rank, world_size=info.world_size
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_audio, num_workers=cfg.data.n_workers)
    if task.prepare is not None and not (out_dir / "last.pt").exists():

        def batches():  # (no grad-mode switch in here: a generator left at a yield would leak it)
            for batch in loader:
                if batch["ids"]:
                    yield front(batch["audio"].to(device), batch["audio_lens"].to(device)).detach(), batch["audio_lens"]

        gen = batches()
        task.prepare(gen)
        gen.close()
    net = DDP(model, broadcast_buffers=False) if info.distributed else model
    context_samples, gap = int(context * SAMPLE_RATE), int(cfg.data.concat_gap * SAMPLE_RATE)
    tokenizer, unit = tokenizer_for(task.whisper), text_unit(task.whisper)
    n_text = task.whisper.dims.n_text_ctx - len(tokenizer.sot_sequence_including_notimestamps) - 1

    def fits_text(text: str) -> bool:
        return len(encode_text(text, tokenizer, unit)) <= n_text

    def loss_fn(batch: dict):
        if not batch["ids"]:  # every file of the batch failed to load
            return None
        if cfg.data.concat:
            batch = dict(batch)
            batch["audio"], batch["audio_lens"], batch["text"] = concat_utterances(
                batch["audio"], batch["audio_lens"], batch["text"], context_samples, gap, fits_text
            )
        with torch.autocast(device.type, enabled=False):  # the log-mel in fp32
            mel = front(batch["audio"], batch["audio_lens"])
        # SpecAugment draws from the global RNG, which the checkpoint saves and restores
        mel = spec_augment(mel, torch.div(batch["audio_lens"], HOP, rounding_mode="floor"), cfg.specaug)
        return task.loss(net, mel, batch["text"], batch["audio_lens"])

    step = run_loop(
        cfg.loop,
        info,
        out_dir,
        model,
        loss_fn,
        loader,
        sampler,
        task.save,
        validate_fn=lambda: task.validate(front, cfg, device),
        full_config=cfg,
        param_groups=task.param_groups(cfg.loop.weight_decay) if task.param_groups is not None else None,
        after_step=task.after_step,
        select_on=task.select_on or cfg.select_on,
    )
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out_dir)}
