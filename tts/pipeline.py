"""The TTS: text -> LM (semantic tokens) -> flow (mel) -> vocoder (24 kHz audio), offline or streaming.

A TTS model is a folder with a data-only ``pipeline.json`` naming its parts by relative path — the LM directory
(a standard HF model), ``flow.safetensors``, ``vocoder.safetensors`` — the semantic tokenizer that reads prompt
audio (a bundled name or a path) and the mel settings the flow was trained on.

Zero-shot voice continuation: give a prompt utterance (audio and its text). Its tokens follow ``<|audio_bos|>`` in
the LM and its mel is the flow's in-context prompt.

Inputs are checked first (:mod:`tts.inputs`): empty text, text with nothing speakable (only punctuation, emoji,
another script), a silent prompt or one shorter than 1 s raise ``ValueError``; characters that cannot be spoken are
dropped and a prompt longer than 30 s is trimmed to its first 30 s, each with a :class:`~tts.inputs.TTSInputWarning`;
a prompt at another sample rate is resampled. The text is normalised (digits, abbreviations, symbols spelled out)
and cut into sentences — overlong ones at clause punctuation, then at word boundaries, to at most
``SynthesisOptions.max_chars`` characters — and synthesized chunk by chunk: the LM sees one chunk (plus the prompt)
at a time. Chunk ``k`` is sampled with seed ``seed + k`` (LM and flow), so the offline output is the chunks' own
outputs (each as if synthesized alone with its seed) joined by ``SynthesisOptions.sentence_pause`` seconds of
silence (default 0.2 s); :meth:`TTS.stream` yields the same pause between them.

Streaming (:meth:`TTS.stream`): LM steps are consumed as they come; whenever the flow's next chunk of
``chunk_tokens`` tokens and its look-ahead are known, the flow (under the chunk mask, with position-fixed noise)
produces that chunk's mel, which feeds the vocoder's stream. The same weights serve offline synthesis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from audiotok.audio import resample
from audiotok.data.features import MelConfig, MelSpectrogram, cosyvoice2_mel
from audiotok.registry import Pretrained
from tts.flow import FlowDecoder
from tts.inputs import MAX_CHARS, TTSInputWarning, check_prompt, prepare_prompt_text, prepare_text, split_sentences
from tts.lm import TTSLM
from tts.sampling import SamplingConfig
from tts.vocoder import Vocoder

PIPELINE_FILE = "pipeline.json"

__all__ = ["PIPELINE_FILE", "TTS", "SynthesisOptions", "TTSInputWarning", "read_spec", "split_sentences"]


@dataclass
class SynthesisOptions:
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    n_steps: int = 10  # flow ODE steps
    cfg_strength: float = 0.7
    mask: str = "full"  # offline attention mask of the flow ("chunk" reproduces streaming exactly)
    seed: int = 0  # chunk k of the text samples with seed + k
    max_chars: int = MAX_CHARS  # longest text chunk (normalised characters) the LM is given at once
    sentence_pause: float = 0.2  # seconds of silence between consecutive chunks (offline and streaming)


def read_spec(folder: str | os.PathLike) -> dict:
    """A TTS folder's ``pipeline.json`` with its parts (``lm``, ``flow``, ``vocoder``) as absolute paths, and
    ``semantic`` as an absolute path when the folder holds that file, else as given (a bundled name)."""
    folder = Path(folder)
    if not (folder / PIPELINE_FILE).is_file():
        raise FileNotFoundError(f"{folder}: not a TTS model folder (no {PIPELINE_FILE})")
    spec = json.loads((folder / PIPELINE_FILE).read_text())
    for key in ("lm", "flow", "vocoder", "semantic"):
        path = folder / spec[key]
        if key != "semantic" or path.exists():  # absolute, but links kept: a hub cache's files are links to blobs
            spec[key] = os.path.abspath(path)
    return spec


class TTS(Pretrained):
    """The three models and the glue. Build with :meth:`from_pretrained` (the bundled ``tts`` with no argument, a
    TTS folder, or a hub id of an uploaded one) or from parts."""

    registry_kind = "tts"

    def __init__(self, lm: TTSLM, flow: FlowDecoder, vocoder: Vocoder, semantic, mel: MelConfig | None = None):
        self.lm, self.flow, self.vocoder, self.semantic = lm, flow, vocoder, semantic
        self.mel_config = mel or cosyvoice2_mel()
        self.mel = MelSpectrogram(self.mel_config)
        self.sources: dict[str, str] = {}

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    # ---------------------------------------------------------------------------------------------- prompts
    def _prompt(self, audio: torch.Tensor | None, sample_rate: int | None):
        """Prompt audio -> (codes list, mel (1, T, n_mels)) with T = ratio * len(codes); or ([], None)."""
        if audio is None:
            return [], None
        ratio = self.flow.config.ratio
        wav = resample(audio.float().reshape(-1), sample_rate or self.sample_rate, self.sample_rate)
        unit = self.mel_config.hop_length * ratio  # samples per token at the output rate
        wav = wav[: len(wav) // unit * unit]
        if len(wav) == 0:
            raise ValueError("the prompt audio is shorter than one token")
        codes, lens = self.semantic.encode([wav], sample_rate=self.sample_rate)
        mel, mel_lens = self.mel(wav[None], torch.tensor([len(wav)]))
        n = min(int(lens[0]), int(mel_lens[0]) // ratio)
        return codes[0, :n].tolist(), mel[:, :, : n * ratio].transpose(1, 2)

    def _inputs(self, text, prompt_audio, prompt_sample_rate, prompt_text, o: SynthesisOptions):
        """Checked inputs (:mod:`tts.inputs`) -> (text chunks, prompt text ids, prompt codes, prompt mel)."""
        if o.sentence_pause < 0:
            raise ValueError(f"sentence_pause must be >= 0 s, got {o.sentence_pause}")
        chunks = prepare_text(text, o.max_chars)
        prompt_text = prepare_prompt_text(prompt_text, prompt_audio is not None)
        if prompt_audio is not None:
            prompt_audio, prompt_sample_rate = check_prompt(prompt_audio, prompt_sample_rate, self.sample_rate)
        p_ids = self.lm.tokenizer.encode_text(prompt_text) if prompt_text else []
        return chunks, p_ids, *self._prompt(prompt_audio, prompt_sample_rate)

    def _text(self, sentence: str, p_ids: list[int]) -> tuple[list[int], int]:
        """LM text ids for one chunk: the prompt text's, then the chunk's; and how many are the chunk's."""
        target = self.lm.tokenizer.encode_text(sentence)
        return p_ids + target, len(target)

    def _pause(self, o: SynthesisOptions, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(round(o.sentence_pause * self.sample_rate), dtype=like.dtype, device=like.device)

    # -------------------------------------------------------------------------------------------- synthesis
    def synthesize(
        self,
        text: str,
        prompt_audio: torch.Tensor | None = None,
        prompt_sample_rate: int | None = None,
        prompt_text: str | None = None,
        options: SynthesisOptions | None = None,
    ) -> torch.Tensor:
        """Mono audio (T,) at :attr:`sample_rate` for ``text``: its chunks' audio joined by
        ``options.sentence_pause`` of silence. ``prompt_audio``: (T,) or (C, T) at ``prompt_sample_rate`` (default:
        the model's), 1 to 30 s (longer is trimmed); ``prompt_text``: what it says. Bad input: ``ValueError``."""
        o = options or SynthesisOptions()
        with torch.no_grad():  # (not a decorator: warnings about the input point at the caller)
            chunks, p_ids, p_codes, p_mel = self._inputs(text, prompt_audio, prompt_sample_rate, prompt_text, o)
            return self._synthesize(chunks, p_ids, p_codes, p_mel, o)

    def _synthesize(self, chunks, p_ids, p_codes, p_mel, o: SynthesisOptions) -> torch.Tensor:
        pieces: list[torch.Tensor] = []
        for k, sentence in enumerate(chunks):
            ok = replace(o, seed=o.seed + k)
            ids, n_target = self._text(sentence, p_ids)
            codes = self.lm.generate([ids], [p_codes], o.sampling, ok.seed, target_text_lens=[n_target])[0]
            if not codes:
                continue
            wav = self._vocode(
                self._mel(p_codes + codes, p_mel, ok, o.mask)[:, len(p_codes) * self.flow.config.ratio :]
            )
            pieces += [self._pause(o, wav), wav] if pieces else [wav]
        return torch.cat(pieces) if pieces else torch.zeros(0)

    @torch.no_grad()
    def copy_synthesis(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """The vocoder alone: ``audio``'s own mel -> audio (T,) (what the flow's mel is measured against)."""
        _, mel = self._prompt(audio, sample_rate)
        return self._vocode(mel)

    @torch.no_grad()
    def resynthesize(
        self,
        audio: torch.Tensor,
        sample_rate: int,
        prompt_audio: torch.Tensor | None = None,
        prompt_sample_rate: int | None = None,
        options: SynthesisOptions | None = None,
    ) -> torch.Tensor:
        """The flow and vocoder alone: ``audio``'s own semantic tokens -> mel (with the prompt's mel in context) ->
        audio (T,). Measures what the tokens, the flow and the vocoder keep, without the LM."""
        o = options or SynthesisOptions()
        if prompt_audio is not None:
            prompt_audio, prompt_sample_rate = check_prompt(prompt_audio, prompt_sample_rate, self.sample_rate)
        p_codes, p_mel = self._prompt(prompt_audio, prompt_sample_rate)
        codes, _ = self._prompt(audio, sample_rate)
        return self._vocode(self._mel(p_codes + codes, p_mel, o, o.mask)[:, len(p_codes) * self.flow.config.ratio :])

    def _mel(self, codes: list[int], p_mel: torch.Tensor | None, o: SynthesisOptions, mask: str) -> torch.Tensor:
        """Flow mel (1, T, n_mels) for all ``codes`` (prompt codes first)."""
        dev = next(self.flow.parameters()).device
        tokens = torch.tensor([codes], device=dev)
        lens = torch.tensor([len(codes)], device=dev)
        p_lens = None if p_mel is None else torch.tensor([p_mel.shape[1]], device=dev)
        mel, _ = self.flow.synthesize(
            tokens, lens, p_mel, p_lens, n_steps=o.n_steps, cfg_strength=o.cfg_strength, mask=mask, seed=o.seed
        )
        return mel

    def _vocode(self, mel: torch.Tensor) -> torch.Tensor:
        return self.vocoder(mel.transpose(1, 2))[0]

    def stream(
        self,
        text: str,
        prompt_audio: torch.Tensor | None = None,
        prompt_sample_rate: int | None = None,
        prompt_text: str | None = None,
        options: SynthesisOptions | None = None,
    ) -> Iterator[torch.Tensor]:
        """Audio chunks (samples,) as they are ready; they concatenate to the utterance (text chunks one after
        the other, ``options.sentence_pause`` of silence between them). The inputs are checked here, before the
        first chunk is asked for (bad input: ``ValueError`` from this call)."""
        o = options or SynthesisOptions()
        with torch.no_grad():
            chunks, p_ids, p_codes, p_mel = self._inputs(text, prompt_audio, prompt_sample_rate, prompt_text, o)
        return self._stream(chunks, p_ids, p_codes, p_mel, o)

    @torch.no_grad()
    def _stream(self, chunks, p_ids, p_codes, p_mel, o: SynthesisOptions) -> Iterator[torch.Tensor]:
        spoke = False  # some audio has come out (the pause goes between chunks that have audio)
        for k, sentence in enumerate(chunks):
            ok = replace(o, seed=o.seed + k)
            ids, n_target = self._text(sentence, p_ids)
            first = True
            for wav in self.vocoder.stream(self._mel_chunks(ids, n_target, p_codes, p_mel, ok, ok.seed)):
                if first and spoke and o.sentence_pause > 0:
                    yield self._pause(o, wav)
                first, spoke = False, True
                yield wav

    def _mel_chunks(self, ids, n_target, p_codes, p_mel, o: SynthesisOptions, seed: int) -> Iterator[torch.Tensor]:
        """(n_mels, frames) chunks of the flow's output for the target, as LM steps make them final."""
        c = self.flow.config
        chunk, ratio, la = c.chunk_tokens, c.ratio, c.lookahead
        codes = list(p_codes)
        emitted = len(p_codes) * ratio  # frames already given out (the prompt's are never)
        steps = self.lm.generate_steps([ids], [p_codes], o.sampling, seed, target_text_lens=[n_target])
        finished = False
        while not finished:
            step = next(steps, None)
            if step is None:
                finished = True
            elif step[0] is not None:
                codes.append(step[0])
            # frames are final once their whole chunk and its look-ahead tokens are known
            final = len(codes) * ratio if finished else (max(0, len(codes) - la) // chunk) * chunk * ratio
            if final > emitted and len(codes) > len(p_codes):
                mel = self._mel(codes, p_mel, o, "chunk")
                yield mel[0, emitted:final].T
                emitted = final

    # -------------------------------------------------------------------------------------------------- I/O
    def save_pretrained(
        self, folder: str | os.PathLike, semantic: str = "semantic", dtype: torch.dtype | None = None
    ) -> Path:
        """The model folder: ``lm/`` (HF directory), ``flow.safetensors``, ``vocoder.safetensors`` and
        ``pipeline.json`` (``semantic``: a bundled name or a path relative to the folder). ``dtype``: store the
        floating-point weights in it (e.g. fp16 for a bundled default; they load back as fp32)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lm_state = None
        if dtype is not None:  # cast once per storage, so tied weights stay one tensor (saved once)
            cast: dict[int, torch.Tensor] = {}
            lm_state = {
                k: cast.setdefault(v.data_ptr(), v.to(dtype)) if v.is_floating_point() else v
                for k, v in self.lm.model.state_dict().items()
            }
        self.lm.save_pretrained(folder / "lm", state_dict=lm_state)
        self.flow.save(folder / "flow.safetensors", dtype=dtype)
        self.vocoder.save(folder / "vocoder.safetensors", dtype=dtype)
        spec = {
            "format_version": "1",
            "lm": "lm",
            "flow": "flow.safetensors",
            "vocoder": "vocoder.safetensors",
            "semantic": semantic,
            "mel": asdict(self.mel_config),
        }
        (folder / PIPELINE_FILE).write_text(json.dumps(spec, indent=1))
        return folder

    @classmethod
    def load_resolved(cls, resolved, device: str | torch.device = "cpu") -> TTS:
        from audiotok import registry
        from audiotok.config import from_dict

        spec = read_spec(resolved.path)
        semantic = registry.load(spec["semantic"], "tokenizer", device=str(device))
        tts = cls(
            TTSLM.from_pretrained(spec["lm"], device),
            FlowDecoder.from_pretrained(spec["flow"], device),
            Vocoder.from_pretrained(spec["vocoder"], device),
            semantic,
            from_dict(MelConfig, spec["mel"]),
        )
        tts.sources = {k: str(v) for k, v in spec.items()}
        return tts
