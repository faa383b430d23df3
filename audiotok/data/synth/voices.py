"""The synthetic voices: which engines and voices exist here, how each is invoked, and the speaker split.

Every voice is a speaker. Adult voices: flite (kal16, awb, rms, slt), festival (kal, ked, slt-hts), espeak-ng
(English accents x voice variants, each with its own pitch and rate), and — when installed, never required —
mbrola us1/us2/us3/en1 through espeak-ng and pico2wave. The ``child`` domain makes higher-pitched, faster voices:
espeak-ng with high pitch and rate, and flite/festival voices pitch-shifted and sped up with sox.

With ``neural=True`` the adult domain adds the neural voices of :mod:`audiotok.data.synth.neural` (corpus v2):
the Kokoro-82M packs that speak English intelligibly (:data:`KOKORO_ENGLISH_PACKS`), convex blends of two of them
as further speakers, Hibari "heart" and Piper joe. Each neural utterance gets its own speaking rate in
:data:`NEURAL_SPEED`.

The split is one spec, in code: :func:`is_test_voice` holds out whole speakers for the test split.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from audiotok.utils import stable_hash

FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = {"kal": "voice_kal_diphone", "ked": "voice_ked_diphone", "slt-hts": "voice_cmu_us_slt_arctic_hts"}
MBROLA_VOICES = ("us1", "us2", "us3", "en1")
PICO_VOICES = ("en-US", "en-GB")
# voices pocketsphinx understands well (WER ~0.13-0.30): the TTS trains on these
INTELLIGIBLE = ("flite-awb", "flite-rms", "flite-slt", "festival-kal", "festival-ked", "festival-slt-hts")
# espeak-ng variants that are not speech-like enough to be a speaker (whispered, effects, test voices)
_VARIANT_DENYLIST = {"whisper", "whisperf", "Demonic", "fast", "announcer", "croak", "UniRobot"}  # file names
# whole speakers held out for test, by name; espeak-ng voices are held out by hash (see is_test_voice)
TEST_VOICES = ("flite-kal16", "mbrola-us3", "pico-en-GB")
NEURAL_ENGINES = ("kokoro", "hibari", "piper")
# Kokoro packs kept as English speakers: Whisper tiny.en WER <= 0.20 on 12 sentences outside the corpus' text
# (../docs/results/2026-12-07-corpus-v2.md has the measurement and its command). jf_alpha (0.144) is kept.
KOKORO_ENGLISH_PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_BLEND_WEIGHTS = (0.25, 0.5, 0.75)  # weight of the first pack of a pair; the second gets the rest
NEURAL_SPEED = (0.85, 1.15)  # per-utterance speaking rate of the neural voices, uniform


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker and how to make it speak."""

    name: str  # speaker id, unique
    engine: str  # "flite" | "festival" | "espeak" | "mbrola" | "pico" | "kokoro" | "hibari" | "piper"
    voice: str  # the engine's own voice id (Kokoro: a pack or a blend "jf_alpha*0.5+jm_kumo*0.5")
    gender: str = "?"  # "M", "F" or "?"
    pitch: int | None = None  # espeak-ng -p (0-99)
    rate: int | None = None  # espeak-ng -s (words per minute)
    semitones: float = 0.0  # sox pitch shift, in semitones
    tempo: float = 1.0  # sox tempo factor (duration / tempo, pitch kept)
    domain: str = "adult"

    @property
    def family(self) -> str:
        return self.engine

    @property
    def neural(self) -> bool:
        return self.engine in NEURAL_ENGINES

    def command(self, text: str, out: Path) -> tuple[list[str], str | None]:
        """The engine command writing ``text`` to the wav ``out``, and what to send on stdin."""
        if self.engine == "flite":
            return ["flite", "-voice", self.voice, "-t", text, "-o", str(out)], None
        if self.engine == "festival":
            return ["text2wave", "-eval", f"({self.voice})", "-o", str(out)], text
        if self.engine in ("espeak", "mbrola"):
            cmd = ["espeak-ng", "-v", self.voice, "-w", str(out)]
            if self.pitch is not None:
                cmd += ["-p", str(self.pitch)]
            if self.rate is not None:
                cmd += ["-s", str(self.rate)]
            return cmd + ["--", text], None
        if self.engine == "pico":
            return ["pico2wave", "-l", self.voice, "-w", str(out), text], None
        raise ValueError(f"unknown engine {self.engine!r}")

    def sox_effects(self) -> list[str]:
        """sox effects applied after synthesis (child voices)."""
        effects = []
        if self.semitones:
            effects += ["pitch", f"{self.semitones * 100:.0f}"]
        if self.tempo != 1.0:
            effects += ["tempo", "-s", f"{self.tempo:.3f}"]
        return effects


@lru_cache(maxsize=1)
def espeak_accents() -> tuple[str, ...]:
    """English accents of the installed espeak-ng (its own voices, not mbrola)."""
    if shutil.which("espeak-ng") is None:
        return ()
    out = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True, check=False).stdout
    accents = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("gmw/en") and cols[1] not in accents:
            accents.append(cols[1])
    return tuple(accents)


@lru_cache(maxsize=1)
def espeak_variants() -> tuple[tuple[str, str], ...]:
    """``(variant, gender)`` pairs of the installed espeak-ng voice variants."""
    if shutil.which("espeak-ng") is None:
        return ()
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=False).stdout
    variants = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            name = cols[4][3:]
            if name not in _VARIANT_DENYLIST:
                variants.append((name, cols[2][-1]))
    return tuple(sorted(set(variants)))


def _mbrola_installed(voice: str) -> bool:
    return shutil.which("mbrola") is not None and any(
        Path(d, voice, voice).exists() for d in ("/usr/share/mbrola", "/usr/lib/mbrola")
    )


def engines_available() -> dict[str, bool]:
    """Which engines can run here."""
    return {
        "flite": shutil.which("flite") is not None,
        "festival": shutil.which("text2wave") is not None,
        "espeak": shutil.which("espeak-ng") is not None,
        "mbrola": any(_mbrola_installed(v) for v in MBROLA_VOICES),
        "pico": shutil.which("pico2wave") is not None,
        "sox": shutil.which("sox") is not None,
    }


def _festival_voice_installed(fn: str) -> bool:
    name = fn.removeprefix("voice_")
    return any(Path("/usr/share/festival/voices", lang, name).is_dir() for lang in ("english", "us"))


def _espeak_voices(n: int, seed: int, child: bool) -> list[Voice]:
    accents, variants = espeak_accents(), espeak_variants()
    combos = [(a, v, g) for a in accents for v, g in variants]
    if not combos or n <= 0:
        return []
    rng = np.random.default_rng(stable_hash("espeak-voices", seed, child) % 2**63)
    picked = sorted(rng.choice(len(combos), size=min(n, len(combos)), replace=False).tolist())
    voices = []
    for i in picked:
        accent, variant, gender = combos[i]
        r = np.random.default_rng(stable_hash("espeak-prosody", accent, variant, child) % 2**63)
        if child:
            pitch, rate, semitones = int(r.integers(70, 100)), int(r.integers(180, 231)), float(r.integers(2, 6))
        else:
            pitch, rate, semitones = int(r.integers(25, 76)), int(r.integers(140, 186)), 0.0
        prefix = "child-espeak" if child else "espeak"
        voices.append(
            Voice(
                f"{prefix}-{accent}-{variant}",
                "espeak",
                f"{accent}+{variant}",
                gender,
                pitch,
                rate,
                semitones,
                domain="child" if child else "adult",
            )
        )
    return voices


def neural_voices(packs: tuple[str, ...] = KOKORO_ENGLISH_PACKS) -> list[Voice]:
    """The installed neural voices: Kokoro packs, their pairwise blends at :data:`KOKORO_BLEND_WEIGHTS`, Hibari
    heart and Piper joe (engines that are not installed are left out)."""
    from audiotok.data.synth.neural import neural_available

    have = neural_available()
    voices: list[Voice] = []
    if have["kokoro"]:
        voices += [Voice(f"kokoro-{p}", "kokoro", p, "M" if p.startswith("jm") else "F") for p in packs]
        for i, a in enumerate(packs):
            for b in packs[i + 1 :]:
                for w in KOKORO_BLEND_WEIGHTS:
                    name = f"kokoro-{a}{round(w * 100)}-{b}{round((1 - w) * 100)}"
                    voices.append(Voice(name, "kokoro", f"{a}*{w}+{b}*{1 - w}"))
    if have["hibari"]:
        voices.append(Voice("hibari-heart", "hibari", "heart", "F"))
    if have["piper"]:
        voices.append(Voice("piper-joe", "piper", "en_US-joe-medium", "M"))
    return voices


def list_voices(domain: str = "adult", n_espeak: int = 16, seed: int = 0, neural: bool = False) -> list[Voice]:
    """The voices of a domain that can run on this machine, in a fixed order (``neural``: add the neural voices
    to the adult domain)."""
    if domain not in ("adult", "child"):
        raise ValueError(f"domain must be 'adult' or 'child', got {domain!r}")
    have = engines_available()
    voices: list[Voice] = []
    if have["flite"]:
        voices += [Voice(f"flite-{v}", "flite", v, "F" if v == "slt" else "M") for v in FLITE_VOICES]
    if have["festival"]:
        voices += [
            Voice(f"festival-{k}", "festival", fn, "F" if "slt" in k else "M")
            for k, fn in FESTIVAL_VOICES.items()
            if _festival_voice_installed(fn)
        ]
    if have["mbrola"]:
        voices += [
            Voice(f"mbrola-{v}", "mbrola", f"mb-{v}", "F" if v == "us1" else "M")
            for v in MBROLA_VOICES
            if _mbrola_installed(v)
        ]
    if have["pico"]:
        voices += [Voice(f"pico-{v}", "pico", v, "F") for v in PICO_VOICES]
    if domain == "child":
        if not have["sox"]:
            raise RuntimeError("the child domain needs sox (apt-get install sox)")
        shifted = []
        for v in voices:
            r = np.random.default_rng(stable_hash("child", v.name) % 2**63)
            shifted.append(
                replace(
                    v,
                    name=f"child-{v.name}",
                    semitones=float(r.integers(5, 9)),
                    tempo=float(r.uniform(1.1, 1.25)),
                    domain="child",
                )
            )
        voices = shifted
    voices += _espeak_voices(n_espeak, seed, child=domain == "child")
    if neural and domain == "adult":
        voices += neural_voices()
    return voices


def is_test_voice(voice: Voice, test_percent: int = 20) -> bool:
    """The held-out-speaker rule: the named :data:`TEST_VOICES`, ~``test_percent``% of espeak-ng voices and
    ~``test_percent``% of Kokoro blends (never a pure pack, Hibari or Piper: they are single training voices)."""
    base = voice.name.removeprefix("child-")
    if base in TEST_VOICES:
        return True
    if voice.engine == "espeak" or (voice.engine == "kokoro" and "+" in voice.voice):
        return stable_hash("voice-split", base) % 100 < test_percent
    return False
