"""Train the supervised semantic tokenizer: a quantizer inside a Whisper encoder, trained with the ASR loss.

CosyVoice's recipe: start from an ASR model (real Whisper ``base`` by name — ``configs/base.yaml`` — or
``whisper-synth``, or a local Whisper checkpoint: ``init_whisper=PATH``; from scratch without it), insert FSQ (6561 codes) or a VQ after encoder block ``k`` with an
extra positional encoding after it, and fine-tune encoder + quantizer + decoder with the ASR cross-entropy.

    python recipes/semantic/train.py --config recipes/semantic/configs/tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/semantic/train.py --config recipes/semantic/configs/synth.yaml

Writes ``model.safetensors`` (the whole ASR model with its quantizer) and ``tokenizer.safetensors`` (the
tokenizer half, loadable with ``SemanticTokenizer.from_pretrained``) at every save; resumes from ``last.pt``.
The training loop is :func:`audiotok.whisper.training.train`.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from audiotok.checkpoint import save_model
from audiotok.codec.quantizer import codebook_usage
from audiotok.config import config_from_args
from audiotok.semantic.s3 import SemanticTokenizer
from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
from audiotok.whisper import load_whisper
from audiotok.whisper.model import run_state, with_audio_context
from audiotok.whisper.training import ASRTask, WhisperTrainConfig, train, validate


@dataclass
class SemanticTrainConfig(WhisperTrainConfig):
    model: SupervisedConfig = field(default_factory=SupervisedConfig)  # the Whisper dims and where/how to quantize
    init_whisper: str | None = (
        None  # a Whisper to start from: a name (base, tiny.en) or a .pt/.safetensors; its dims win
    )
    init_whisper_seconds: float | None = None  # slice its audio context to this many seconds (real Whisper: 30 s)
    freeze_below: bool = False  # freeze the conv stem and the blocks below the quantizer (fine-tune those above it
    # and the decoder: the tokenizer's lower half stays the pretrained ASR encoder)
    # freeze the decoder (and the token embedding it shares): the ASR loss then trains only what reads the audio. On a
    # few hours of synthetic speech a trainable decoder learns the training sentences instead of reading the tokens
    freeze_decoder: bool = False
    commit_weight: float = 1.0  # VQ commitment (FSQ has none)
    # training aid: mean squared distance of the encoder output read from the tokens to the starting Whisper's own
    # encoder output (a frozen copy of init_whisper's encoder): a dense target for the blocks above the quantizer
    distill_weight: float = 0.0
    # start the CTC head (model.ctc_input: encoder) from a Whisper run's last.pt whose CTC head read the same
    # encoder output (recipes/whisper with ctc_weight > 0), or a safetensors file of ``ctc.weight``/``ctc.bias`` (the
    # one beside the bundled whisper-synth): a trained head has no blank-only phase
    init_ctc: str | None = None
    # VQ only: the cosine k-means start runs over this many 25 Hz frames of training audio (a batch of 60 s holds
    # 1,500: fewer than the 4,096 codes)
    vq_init_frames: int = 50_000
    # warm start: tensors of an earlier run loaded over the model built from init_whisper (its model.safetensors, or
    # the trained.safetensors beside it: only what training changed, fp16 — small enough to commit, so that a new
    # machine goes on from where the last one stopped). Names and shapes must match; a VQ codebook found there
    # skips the k-means start
    init_state: str | None = None


def semantic_task(cfg: SemanticTrainConfig) -> ASRTask:
    tc = cfg.model
    whisper = None
    if cfg.init_whisper:
        whisper = load_whisper(cfg.init_whisper)
        if cfg.init_whisper_seconds:
            whisper = with_audio_context(whisper, cfg.init_whisper_seconds)
        tc = tc.with_whisper_dims(whisper)
    tc = SupervisedConfig(**{**tc.__dict__, "ctc": tc.ctc or cfg.ctc_weight > 0})
    # the shared loop filters utterances by the audio context (cfg.model.seconds)
    cfg.model = tc
    model = SupervisedTokenizerASR(tc, whisper)
    if cfg.freeze_below:
        enc = model.whisper.encoder
        for module in (enc.conv1, enc.conv2, *enc.blocks[: tc.quantize_after]):
            module.requires_grad_(False)
    if cfg.freeze_decoder:
        model.whisper.decoder.requires_grad_(False)

    if cfg.init_ctc:
        if model.ctc is None or tc.ctc_input != "encoder":
            raise ValueError("init_ctc needs ctc_weight > 0 and model.ctc_input=encoder")
        if cfg.init_ctc.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(cfg.init_ctc)
        else:
            state = run_state(cfg.init_ctc)
        model.ctc.load_state_dict({k.removeprefix("ctc."): v for k, v in state.items() if k.startswith("ctc.")})
    teacher = None
    if cfg.distill_weight > 0:
        if whisper is None:
            raise ValueError("distill_weight needs init_whisper (the teacher is its encoder)")
        teacher_enc = copy.deepcopy(whisper.encoder).eval().requires_grad_(False)
        if cfg.freeze_below:  # the student's frozen lower blocks are the teacher's: run only the teacher's upper half
            upper = teacher_enc.blocks[tc.quantize_after :]

            def teacher(below: torch.Tensor, _mel: torch.Tensor) -> torch.Tensor:
                x = below
                for block in upper:
                    x = block(x)
                return teacher_enc.ln_post(x)

        else:

            def teacher(_below: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
                return teacher_enc(mel)

    rescale = False  # a VQ started from a tokenizer half: its output scale is set from the features' norm
    if cfg.init_state:  # (after the teacher's copy of the starting Whisper)
        rescale = load_partial_state(model, cfg.init_state) and tc.quantizer == "vq"

    def loss(net, mel, texts, audio_lens):
        out = net(mel, texts, cfg.label_smoothing, cfg.token_noise)
        usage = codebook_usage(out["codes"].detach(), model.quantizer.codebook_size)
        total = out["asr"] + cfg.commit_weight * out["commit"]
        logs = {}
        if teacher is not None:
            teacher_enc.to(mel.device)
            with torch.no_grad():
                target = teacher(out["below"].detach(), mel)
            distill = F.mse_loss(out["features"].float(), target.float())
            total = total + cfg.distill_weight * distill
            logs["distill"] = distill.detach()
        if "ctc" in out:
            total = total + cfg.ctc_weight * out["ctc"]
            logs["ctc"] = out["ctc"].detach()
        return total, {
            **logs,
            "asr": out["asr"].detach(),
            "commit": out["commit"].detach(),
            "codebook_used": usage["used"],
            "codebook_perplexity": usage["perplexity"],
        }

    def save(out_dir: Path) -> None:
        save_model(model, out_dir / "model.safetensors")
        model.export_tokenizer().save(out_dir / "tokenizer.safetensors")
        save_trained_part(model, out_dir / "trained.safetensors", cfg.init_whisper)

    def valid(front, cfg_, device):
        model.eval()
        try:

            def through_quantizer(mel):
                q, _, _ = model.quantizer(model.tokenize_hidden(mel))
                return model.decode_tokens_to_features(q)

            quantized = validate(model.whisper, front, cfg_, device, features_fn=through_quantizer)
            return {"wer_tokens": quantized["wer"], "cer_tokens": quantized["cer"], "n": quantized["n"]}
        finally:
            model.train()

    def prepare(batches) -> None:
        """VQ: cosine k-means over ``vq_init_frames`` encoder frames (padding excluded) before the first step."""
        if tc.quantizer != "vq" or (model.quantizer.initialized and not rescale):
            return
        feats, n = [], 0
        model.eval()
        with torch.no_grad():
            for mel, audio_lens in batches:
                h = model.tokenize_hidden(mel).float()
                hop = 320 * tc.pool  # 16 kHz samples per token (Whisper's 50 Hz encoder frames, pooled)
                frames = torch.div(audio_lens + hop - 1, hop, rounding_mode="floor").clamp(max=h.shape[1])
                feats += [h[b, : int(frames[b])].cpu() for b in range(len(h))]
                n += int(frames.sum())
                if n >= cfg.vq_init_frames:
                    break
        model.train()
        h = torch.cat(feats).to(mel.device)
        if rescale:  # the codebook came with the tokenizer: only the scale it hands the blocks above is set here
            model.quantizer.scale.data.copy_(h.norm(dim=-1).mean())
            print(f"vq: codebook from init_state, feature norm {model.quantizer.scale.item():.2f}", flush=True)
            return
        model.quantizer.init_from(h)
        print(f"vq: k-means start over {n} frames, feature norm {model.quantizer.scale.item():.2f}", flush=True)

    return ASRTask(model, model.whisper, loss, save, valid, select_on=f"{cfg.select_on}_tokens", prepare=prepare)


def trained_names(model: SupervisedTokenizerASR) -> list[str]:
    """State-dict names training can change: trainable parameters and the quantizer's buffers (a VQ's codebook)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    names += [f"quantizer.{n}" for n, _ in model.quantizer.named_buffers()]
    state = model.state_dict()
    return [n for n in names if n in state]  # (non-persistent buffers are not state)


def save_trained_part(model: SupervisedTokenizerASR, path: Path, init_whisper: str | None) -> None:
    """Only what training changed, floats in fp16, with the config and the Whisper it starts from in the header."""
    from safetensors.torch import save_file

    from audiotok.checkpoint import FORMAT_VERSION
    from audiotok.config import to_dict
    from audiotok.utils import atomic_path

    state = model.state_dict()
    part = {n: state[n].detach().cpu() for n in trained_names(model)}
    part = {n: (v.half() if v.is_floating_point() else v).contiguous() for n, v in part.items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "model_type": "audiotok-s3-asr-trained-part",
        "config": json.dumps(to_dict(model.config)),
        "init_whisper": init_whisper or "",
    }
    with atomic_path(path) as tmp:
        save_file(part, str(tmp), metadata=meta)


def load_partial_state(model: SupervisedTokenizerASR, path: str) -> bool:
    """Load the tensors of ``path`` over ``model`` (every name must exist with the same shape). ``path`` may also be a
    semantic tokenizer this recipe exported (a file, or a bundled name such as ``semantic``): its half is loaded with
    :meth:`~audiotok.semantic.supervised.SupervisedTokenizerASR.load_tokenizer`. True for a tokenizer."""
    from audiotok import registry
    from audiotok.checkpoint import load_state, read_metadata

    if not Path(path).is_file() or read_metadata(path).get("model_type") == SemanticTokenizer.model_type:
        model.load_tokenizer(registry.load(path, "semantic"))
        print(f"init_state: the tokenizer half from {path}", flush=True)
        return True
    part = load_state(path)
    state = model.state_dict()
    wrong = [n for n, v in part.items() if n not in state or state[n].shape != v.shape]
    if wrong:
        raise ValueError(f"init_state {path}: {len(wrong)} tensors do not fit this model (e.g. {wrong[:3]})")
    model.load_state_dict({**state, **{n: v.to(state[n].dtype) for n, v in part.items()}})
    print(f"init_state: {len(part)} tensors from {path}", flush=True)
    return False


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(SemanticTrainConfig, argv, __doc__), task_builder=semantic_task)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
