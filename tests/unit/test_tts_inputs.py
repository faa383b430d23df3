"""Bad and awkward input to the TTS, through the API and the ``audiotok synthesize`` CLI: empty or unspeakable text,
long text (split, one LM call per chunk, streamed), digits/abbreviations/symbols, other scripts, emoji and control
characters, and prompts that are silent, too short, too long, at another sample rate or unreadable."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from audiotok import audio
from audiotok.text import normalize_text, unspeakable_characters
from tests.conftest import speechlike
from tests.tiny_tts import OPTS, build_tiny_tts
from tts.inputs import TTSInputWarning, check_prompt, prepare_text, split_sentences
from tts.pipeline import TTS, SynthesisOptions
from tts.sampling import SamplingConfig

ROOT = Path(__file__).resolve().parents[2]
SR = 24000


@pytest.fixture(scope="module")
def tts() -> TTS:
    return build_tiny_tts()


class LMSpy:
    """Stands in for the LM's generation: records what it is given, answers ``n`` codes (fast, deterministic)."""

    def __init__(self, tts: TTS, monkeypatch, n: int = 6, events: list | None = None):
        self.calls: list[tuple[list[int], list[int], int]] = []
        self.n, self.events = n, events if events is not None else []
        monkeypatch.setattr(tts.lm, "generate", self.generate)
        monkeypatch.setattr(tts.lm, "generate_steps", self.generate_steps)

    def _record(self, texts, prompt_codes, seed):
        assert len(texts) == 1  # one chunk at a time
        self.calls.append((list(texts[0]), list((prompt_codes or [[]])[0]), seed))
        self.events.append("lm")

    def generate(self, texts, prompt_codes=None, sampling=None, seed=0, target_text_lens=None):
        self._record(texts, prompt_codes, seed)
        return [[7] * self.n]

    def generate_steps(self, texts, prompt_codes=None, sampling=None, seed=0, target_text_lens=None):
        self._record(texts, prompt_codes, seed)
        for _ in range(self.n):
            yield [7]


def stub_flow(tts: TTS, monkeypatch) -> None:
    """The flow's mel as zeros of the right length (the long-text tests count and join, they need no real mel)."""
    n_mels, ratio = tts.mel_config.n_mels, tts.flow.config.ratio
    monkeypatch.setattr(tts, "_mel", lambda codes, p_mel, o, mask: torch.zeros(1, len(codes) * ratio, n_mels))


def piece_len(tts: TTS, n_codes: int) -> int:
    return n_codes * tts.flow.config.ratio * tts.mel_config.hop_length


def pause_len(o: SynthesisOptions) -> int:
    return round(o.sentence_pause * SR)


# -------------------------------------------------------------------------------------------------------- text
LONG_SENTENCES = [
    "Dr. Smith paid $3.50 for 21 apples on the 3rd of May, 1984, at 3:30 pm.",
    "It rose by 12.5% to 1,200 units, i.e. about 50 more than planned.",
    # one long sentence of clauses (cut at the commas) and one with no punctuation at all (cut at spaces)
    ", ".join(f"the {i}th clause of this very long sentence keeps going" for i in range(1, 13)) + ".",
    " ".join(["and the words simply run on without any clause punctuation"] * 8) + "!",
    "Is this the end?",
]


def long_text(n_chars: int = 5000) -> str:
    out, i = [], 0
    while sum(len(s) + 1 for s in out) < n_chars:
        out.append(LONG_SENTENCES[i % len(LONG_SENTENCES)])
        i += 1
    return " ".join(out)[:n_chars].rsplit(" ", 1)[0] + "."


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_empty_text_is_a_value_error(tts, text):
    with pytest.raises(ValueError, match="nothing to say: the text is empty"):
        tts.synthesize(text, options=OPTS)
    with pytest.raises(ValueError, match="empty"):
        tts.stream(text, options=OPTS)  # raised by the call, before the first chunk is asked for
    with pytest.raises(TypeError, match="str"):
        tts.synthesize(None, options=OPTS)


@pytest.mark.parametrize("text", ["!!!", "... ?! ,,, ;:", "-- () [] {} <> * / \\ | ~ ^ `", '"\'"'])
def test_punctuation_only_text_is_a_value_error(tts, text):
    with pytest.raises(ValueError, match="no speakable words"):
        tts.synthesize(text, options=OPTS)
    with pytest.raises(ValueError, match="no speakable words"):
        tts.stream(text, options=OPTS)


@pytest.mark.parametrize(
    "text, kept, dropped",
    [
        ("Hello 世界 there.", "Hello there.", ["世", "界"]),
        ("Good 😀 morning 🎉!", "Good morning!", ["😀", "🎉"]),
        ("Say\x07 it\x00 now\x1b.", "Say it now.", ["\x07", "\x00", "\x1b"]),
        ("Привет, friends.", "friends.", ["П", "р", "и", "в", "е", "т"]),
    ],
)
def test_other_scripts_emoji_and_control_characters_are_dropped_with_a_warning(tts, monkeypatch, text, kept, dropped):
    assert unspeakable_characters(text) == dropped
    lm = LMSpy(tts, monkeypatch)
    with pytest.warns(TTSInputWarning, match="cannot speak") as record:
        wav = tts.synthesize(text, options=OPTS)
    assert len(record) == 1 and all(repr(c) in str(record[0].message) for c in dropped)
    assert record[0].filename == __file__  # the warning points at the caller
    with pytest.warns(TTSInputWarning, match="cannot speak") as record:
        chunks = tts.stream(text, options=OPTS)  # warned by the call, like its errors
    assert record[0].filename == __file__ and len(torch.cat(list(chunks))) == piece_len(tts, 6)
    assert len(wav) == piece_len(tts, 6)
    assert [c[0] for c in lm.calls] == 2 * [tts.lm.tokenizer.hf.encode(kept, add_special_tokens=False)]


def test_accents_white_space_and_format_characters_pass_without_a_warning():
    text = "Caf\u00e9 na\u00efve\u00a0Stra\u00dfe \ufeffco\u00adop \u2014 \u201cok\u201d\u2026"
    assert unspeakable_characters(text) == []
    assert normalize_text(text) == "Cafe naive Strasse coop ok."


@pytest.mark.parametrize("text", ["😀🎉", "世界", "Привет мир", "\x00\x07\x1b", "😀 !!! 世"])
def test_nothing_speakable_left_is_a_value_error_after_the_warning(tts, text):
    with pytest.warns(TTSInputWarning), pytest.raises(ValueError, match="no speakable words"):
        tts.synthesize(text, options=OPTS)


# the expansions added for the TTS (the earlier behaviour: tests/unit/test_text.py)
@pytest.mark.parametrize(
    "raw, norm",
    [
        ("It costs $5.", "It costs five dollars."),
        (
            "$1, $1.50, $0.99, $0.01 and $5.00",
            "one dollar, one dollar and fifty cents, ninety nine cents, one cent and five dollars",
        ),
        ("$5 million and $2.5 billion", "five million dollars and two point five billion dollars"),
        ("€20, £3.50 and ¥100", "twenty euros, three pounds and fifty pence and one hundred yen"),
        ("It fell 3.5% to -5 degrees.", "It fell three point five percent to minus five degrees."),
        ("At 3:30, 3:05 pm, 15:00 or 3:00.", "At three thirty, three oh five p m, fifteen hundred or three o'clock."),
        ("Come at 7 a.m. Then leave at 10pm.", "Come at seven a m. Then leave at ten p m."),
        ("The 1st, 22nd, 103rd and 30th.", "The first, twenty second, one hundred third and thirtieth."),
        ("The 1990s and the 80s.", "The nineteen nineties and the eighties."),
        ("1, 2, 3 and 1,000,000", "one, two, three and one million"),
        (
            "1½ cups and ¾ of it at 25°C",
            "one and one half cups and three quarters of it at twenty five degrees celsius",
        ),
        ("I said no. No. 5 is mine.", "I said no. number five is mine."),
        ("e.g. this, i.e. that, etc. Then", "for example this, that is that, et cetera. Then"),
        ("In the U.S. Army.", "In the U S Army."),
        ("3×4 and A&B #1 @home", "three times four and A and B number one at home"),
    ],
)
def test_digits_abbreviations_and_symbols_are_spelled_out(raw, norm):
    assert normalize_text(raw) == norm
    assert normalize_text(norm) == norm  # idempotent: the tokenizer normalises the chunks again


def test_the_lm_reads_the_normalised_text(tts, monkeypatch):
    lm = LMSpy(tts, monkeypatch)
    tts.synthesize("Dr. Who paid $5 at 3:30 on the 2nd.", options=OPTS)
    expected = "doctor Who paid five dollars at three thirty on the second."
    assert lm.calls[0][0] == tts.lm.tokenizer.hf.encode(expected, add_special_tokens=False)


def test_sentence_splitting_at_clauses_then_words():
    assert split_sentences("One. Two! Three?  Four") == ["One.", "Two!", "Three?", "Four"]
    clauses = ", ".join(["a clause of words"] * 30) + "."
    chunks = split_sentences(clauses, 100)
    assert all(len(c) <= 100 for c in chunks) and " ".join(chunks) == clauses
    assert all(c.endswith(",") for c in chunks[:-1])  # cut at clause punctuation
    words = " ".join(["wordy"] * 100)
    chunks = split_sentences(words, 64)
    assert all(len(c) <= 64 for c in chunks) and " ".join(chunks) == words  # cut at word boundaries
    assert split_sentences("x" * 130, 50) == ["x" * 50, "x" * 50, "x" * 30]  # a word longer than the limit
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("a", 0)


def test_5000_characters_are_synthesized_chunk_by_chunk(tts, monkeypatch):
    text = long_text()
    assert 4900 < len(text) <= 5000
    chunks = prepare_text(text)
    norm = normalize_text(text)
    assert " ".join(chunks) == norm and all(len(c) <= 200 for c in chunks)
    assert len(chunks) > len(split_sentences(norm, 10**6))  # overlong sentences were cut further
    prompt = speechlike(int(1.5 * SR), SR)
    p_ids = tts.lm.tokenizer.encode_text("The quick brown fox.")
    encodes = []
    real_encode = tts.semantic.encode
    monkeypatch.setattr(tts.semantic, "encode", lambda *a, **k: encodes.append(1) or real_encode(*a, **k))
    lm = LMSpy(tts, monkeypatch)
    stub_flow(tts, monkeypatch)
    wav = tts.synthesize(text, prompt, SR, "The quick brown fox.", OPTS)
    assert len(encodes) == 1  # the prompt is read once
    # the LM is called once per chunk, with the prompt and that chunk only
    assert len(lm.calls) == len(chunks)
    p_codes = lm.calls[0][1]
    assert len(p_codes) > 0
    for k, (ids, codes, seed) in enumerate(lm.calls):
        assert ids == p_ids + tts.lm.tokenizer.encode_text(chunks[k]) and codes == p_codes and seed == OPTS.seed + k
    # the offline output: the chunks' audio joined by the pause
    assert len(wav) == len(chunks) * piece_len(tts, 6) + (len(chunks) - 1) * pause_len(OPTS)


def test_long_text_streams_chunk_by_chunk(tts, monkeypatch):
    text = long_text(2000)
    chunks = prepare_text(text)
    events: list[str] = []
    lm = LMSpy(tts, monkeypatch, events=events)
    stub_flow(tts, monkeypatch)
    out = []
    for wav in tts.stream(text, options=OPTS):
        events.append("audio")
        out.append(wav)
    assert len(lm.calls) == len(chunks)
    # audio of each chunk comes out before the LM starts on the next one
    lm_at = [i for i, e in enumerate(events) if e == "lm"]
    assert all("audio" in events[a:b] for a, b in zip(lm_at, lm_at[1:], strict=False))
    assert len(torch.cat(out)) == len(chunks) * piece_len(tts, 6) + (len(chunks) - 1) * pause_len(OPTS)


def test_offline_output_is_the_sentences_joined_by_the_pause(tts):
    o = replace(OPTS, sampling=SamplingConfig(min_ratio=1.0, max_ratio=2.0))
    whole = tts.synthesize("The fox. The dog!", options=o)
    first = tts.synthesize("The fox.", options=o)
    second = tts.synthesize("The dog!", options=replace(o, seed=o.seed + 1))  # chunk k samples with seed + k
    assert torch.equal(whole, torch.cat([first, torch.zeros(pause_len(o)), second]))
    streamed = torch.cat(list(tts.stream("The fox. The dog!", options=replace(o, sentence_pause=0.0))))
    assert streamed.shape == torch.Size([len(first) + len(second)])  # no pause asked for, none given
    with pytest.raises(ValueError, match="sentence_pause"):
        tts.synthesize("The fox.", options=SynthesisOptions(sentence_pause=-1.0))


# ------------------------------------------------------------------------------------------------------ prompts
def test_silent_prompt_is_a_value_error(tts):
    for silent in (torch.zeros(2 * SR), 1e-5 * torch.randn(2 * SR)):
        with pytest.raises(ValueError, match="silent"):
            tts.synthesize("Hello there.", silent, SR, "The quick brown fox.", OPTS)
        with pytest.raises(ValueError, match="silent"):
            tts.stream("Hello there.", silent, SR, "The quick brown fox.", OPTS)
        with pytest.raises(ValueError, match="silent"):
            tts.resynthesize(speechlike(SR, SR), SR, silent, SR, OPTS)


def test_prompt_shorter_than_one_second_is_a_value_error(tts):
    short = speechlike(int(0.5 * SR), SR)
    with pytest.raises(ValueError, match=r"too short: 0.50 s .* at least 1 s"):
        tts.synthesize("Hello there.", short, SR, "The quick brown fox.", OPTS)
    # lengths are measured at the prompt's own rate: 20,000 samples are 0.83 s at 24 kHz but 1.25 s at 16 kHz
    samples = speechlike(20000, 16000)
    with pytest.raises(ValueError, match="too short"):
        check_prompt(samples, SR, SR)
    assert check_prompt(samples, 16000, SR)[1] == 16000


def test_prompt_longer_than_30_seconds_is_trimmed_with_a_warning(tts, monkeypatch):
    long = speechlike(31 * 16000, 16000)
    seen = []
    monkeypatch.setattr(tts, "_prompt", lambda a, sr: seen.append((len(a), sr)) or ([], None))
    LMSpy(tts, monkeypatch)
    with pytest.warns(TTSInputWarning, match=r"31.0 s long; only its first 30 s are used"):
        tts.synthesize("Hello there.", long, 16000, "The quick brown fox.", OPTS)
    assert seen == [(30 * 16000, 16000)]


def test_prompt_at_another_sample_rate_is_resampled(tts, monkeypatch):
    p16 = speechlike(int(1.5 * 16000), 16000, seed=4)
    p24 = audio.resample(p16, 16000, SR)
    got = []
    LMSpy(tts, monkeypatch)
    real_encode = tts.semantic.encode
    monkeypatch.setattr(
        tts.semantic, "encode", lambda wavs, **k: got.append((len(wavs[0]), k)) or real_encode(wavs, **k)
    )
    a = tts.synthesize("Jumps over the dog.", p16, 16000, "The quick brown fox.", OPTS)
    b = tts.synthesize("Jumps over the dog.", p24, SR, "The quick brown fox.", OPTS)
    assert got[0] == got[1] and got[0][1] == {"sample_rate": SR}  # read at the model's rate
    assert torch.equal(a, b)
    # (C, T) is averaged to mono; None means the model's rate
    stereo = torch.stack([p24, p24])
    assert torch.equal(tts.synthesize("Jumps over the dog.", stereo, None, "The quick brown fox.", OPTS), b)


def test_other_bad_prompts(tts):
    good = speechlike(SR, SR)
    cases = [
        (torch.zeros(0), SR, "empty"),
        (torch.full((SR,), float("nan")), SR, "NaN"),
        (good, 0, "sample rate"),
        (good, 22050.5, "sample rate"),
        (torch.zeros(3, 4, 5), SR, "shape"),
    ]
    for wav, sr, message in cases:
        with pytest.raises(ValueError, match=message):
            tts.synthesize("Hello.", wav, sr, "The quick brown fox.", OPTS)
    with pytest.raises(ValueError, match="without prompt audio"):
        tts.synthesize("Hello.", prompt_text="The quick brown fox.", options=OPTS)
    with pytest.warns(TTSInputWarning), pytest.raises(ValueError, match="prompt text has no speakable words"):
        tts.synthesize("Hello.", good, SR, "😀😀", OPTS)
    pcm = (good * 32767).to(torch.int16)
    assert torch.allclose(check_prompt(pcm, SR, SR)[0], good, atol=1e-4)


# ------------------------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def cli(tts, monkeypatch, capsys, tmp_path):
    """``audiotok synthesize ...`` in process on the tiny TTS -> (return code, stderr)."""
    monkeypatch.setattr(TTS, "from_pretrained", lambda *a, **k: tts)

    def run(*args: str, out: str = "out.wav") -> tuple[int, str]:
        capsys.readouterr()
        from audiotok.cli import main

        rc = main(["synthesize", *args, "-o", str(tmp_path / out), "--steps", "2", "--max-ratio", "3"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return rc, err

    return run


def test_cli_empty_and_unspeakable_text(cli):
    for text in ("", "   "):
        rc, err = cli(text)
        assert rc == 2 and "audiotok synthesize: error: nothing to say" in err
    rc, err = cli("?!...")
    assert rc == 2 and "no speakable words" in err
    rc, err = cli("😀 世界")
    assert rc == 2 and "no speakable words" in err


def test_cli_drops_other_scripts_with_one_warning(cli, tmp_path):
    rc, err = cli("Hello 世界 there\x07.")
    assert rc == 0 and audio.info(tmp_path / "out.wav").duration > 0
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "audiotok synthesize: warning:" in warnings[0] and "'世'" in warnings[0]


def test_cli_long_text_from_a_file_and_digits(cli, tts, monkeypatch, tmp_path):
    (tmp_path / "long.txt").write_text(long_text(), encoding="utf-8")
    lm = LMSpy(tts, monkeypatch)
    stub_flow(tts, monkeypatch)
    for extra in ([], ["--stream"]):
        lm.calls.clear()
        rc, err = cli("@" + str(tmp_path / "long.txt"), *extra)
        assert rc == 0 and len(lm.calls) == len(prepare_text(long_text())), err
    lm.calls.clear()
    assert cli("It costs $5 at 3:30.")[0] == 0
    assert lm.calls[0][0] == tts.lm.tokenizer.hf.encode(
        "It costs five dollars at three thirty.", add_special_tokens=False
    )


def test_cli_unreadable_text_files_and_bad_lines(cli, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "lines.txt").write_text("Hello there.\n!!!\n", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    for args, message in [
        (["@" + str(tmp_path / "missing.txt")], "cannot read the text file"),
        (["@" + str(tmp_path)], "cannot read the text file"),
        (["@" + str(tmp_path / "latin1.txt")], "not UTF-8"),
        (["--lines", str(tmp_path / "lines.txt")], "line 2: nothing to say"),
        (["--lines", str(tmp_path / "blank.txt")], "no non-empty lines"),
    ]:
        rc, err = cli(*args)
        assert rc == 2 and message in err, (args, err)
    rc, err = cli("Hello.", out="out.txt")
    assert rc == 2 and "must be a .wav" in err


def test_cli_bad_prompts(cli, tts, monkeypatch, tmp_path):
    p = tmp_path
    audio.save(p / "silent.wav", torch.zeros(2 * SR), SR)
    audio.save(p / "short.wav", speechlike(SR // 2, SR), SR)
    audio.save(p / "p16.wav", speechlike(int(1.5 * 16000), 16000), 16000)
    audio.save(p / "long.wav", speechlike(31 * 8000, 8000), 8000)
    (p / "text.wav").write_text("not audio")
    (p / "empty.wav").write_bytes(b"")
    text = ["Hello there.", "--prompt-text", "The quick brown fox."]
    for name, message in [
        ("missing.wav", "missing.wav"),
        ("text.wav", "text.wav"),
        ("empty.wav", "empty.wav"),
        ("silent.wav", "silent"),
        ("short.wav", "too short"),
    ]:
        rc, err = cli(*text, "--prompt", str(p / name))
        assert rc == 2 and "audiotok synthesize: error:" in err and message in err, (name, err)
    assert cli(*text, "--prompt", str(p / "p16.wav"))[0] == 0  # resampled
    monkeypatch.setattr(tts, "_prompt", lambda a, sr: ([], None))  # (the tiny tokenizer need not read 30 s)
    rc, err = cli(*text, "--prompt", str(p / "long.wav"))
    assert rc == 0 and err.count("warning: the prompt audio is 31.0 s long; only its first 30 s are used") == 1
    rc, err = cli("Hello.", "--prompt-text", "The quick brown fox.")
    assert rc == 2 and "--prompt-text needs --prompt" in err
    rc, err = cli("Hello.", "--prompt", str(p / "p16.wav"))
    assert rc == 2 and "--prompt needs --prompt-text" in err


def test_cli_as_a_process_reports_bad_input_without_a_traceback(tmp_path):
    cmd = [sys.executable, "-m", "audiotok.cli", "synthesize", "-o", str(tmp_path / "x.wav")]
    r = subprocess.run([*cmd, "?!"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no speakable words" in r.stderr and "Traceback" not in r.stderr, r.stderr
