"""The web demo: handlers in-process, and the page itself in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from audiotok import audio, registry
from audiotok.codec import Codec, codec_config
from tests.conftest import speechlike

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def codec_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Codec(codec_config("tiny"))
    model.quantizer.init_from_latents(torch.randn(300, 16), iters=2)
    return model.save(tmp_path_factory.mktemp("app") / "tiny.safetensors")


@pytest.fixture
def env_codec(codec_file, monkeypatch):
    monkeypatch.setenv("AUDIOTOK_CODEC", str(codec_file))
    app.get_codec.cache_clear()
    yield
    app.get_codec.cache_clear()


def test_codec_handler(env_codec, tmp_path):
    audio.save(tmp_path / "x.wav", speechlike(32000, 16000), 16000)
    out = app.codec_roundtrip(str(tmp_path / "x.wav"))
    assert "**150 tokens**" in out["summary"] and "75.0 tokens/s" in out["summary"]
    assert "PESQ" in out["metrics"]
    rate, rec = out["reconstruction"]
    assert rate == 24000 and rec.shape == out["original"][1].shape == (48000,)
    assert out["tokens_image"].shape == (160, 300, 3) and out["spectrograms"].dtype.name == "uint8"


def test_bad_uploads_give_messages(env_codec, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_text("junk")
    audio.save(tmp_path / "long.wav", torch.zeros(16000 * 61), 16000)
    for name, message in (("empty.wav", "empty"), ("junk.wav", "cannot be used"), ("long.wav", "up to 60 s")):
        with pytest.raises(app.DemoError, match=message):
            app.codec_roundtrip(str(tmp_path / name))
    with pytest.raises(app.DemoError, match="upload"):
        app.codec_roundtrip(None)


def test_batch_zip_and_semantic_message(env_codec, tmp_path, monkeypatch):
    audio.save(tmp_path / "a.wav", speechlike(16000, 16000), 16000)
    (tmp_path / "bad.wav").write_text("junk")
    out = app.batch_tokens([str(tmp_path / "a.wav"), str(tmp_path / "bad.wav")])
    assert out["message"] == "1 file(s) encoded, 1 failed (see failed.jsonl)"
    names = zipfile.ZipFile(out["zip"]).namelist()
    assert "a.tokens.safetensors" in names and "failed.jsonl" in names
    monkeypatch.delenv("AUDIOTOK_S3", raising=False)
    monkeypatch.setattr(registry, "ASSETS", tmp_path)  # no bundled semantic default either
    app.get_semantic.cache_clear()
    with pytest.raises(app.DemoError, match="No semantic tokenizer"):
        app.semantic_tokens(str(tmp_path / "a.wav"))


def test_asr_tab_compares_base_and_adapted(tmp_path, monkeypatch):
    from asr.adapters import Adapter, AdapterConfig
    from audiotok.whisper import new_whisper, save_openai, small_dims

    model = new_whisper(small_dims(80, 2.0, 32, 2, 1, n_text_ctx=32), seed=0)
    save_openai(model, tmp_path / "base.pt")
    adapter = Adapter(model, AdapterConfig())
    with torch.no_grad():
        for m in adapter.s2lora_layers().values():
            m.lam.fill_(0.5)
    adapter.save(tmp_path / "a.safetensors")
    audio.save(tmp_path / "a.wav", speechlike(16000, 16000), 16000)
    monkeypatch.setenv("AUDIOTOK_WHISPER", str(tmp_path / "base.pt"))
    monkeypatch.setenv("AUDIOTOK_ASR_ADAPTER", str(tmp_path / "a.safetensors"))
    app.get_asr.cache_clear()
    try:
        out = app.asr_compare(str(tmp_path / "a.wav"))
        assert out["base"] and out["adapted"] and "a.safetensors" in out["message"]
        with pytest.raises(app.DemoError, match="upload"):
            app.asr_compare(None)
        monkeypatch.setenv("AUDIOTOK_WHISPER", str(tmp_path / "missing.pt"))
        app.get_asr.cache_clear()
        with pytest.raises(app.DemoError, match="No Whisper model"):
            app.asr_compare(str(tmp_path / "a.wav"))
    finally:
        app.get_asr.cache_clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make setup does it)")
def test_page_in_headless_chromium(codec_file, tmp_path):
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "AUDIOTOK_CODEC": str(codec_file), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start: " + server.stdout.read()[-2000:] if server.poll() else "timeout")
        good, bad = tmp_path / "speech.wav", tmp_path / "broken.wav"
        audio.save(good, speechlike(32000, 16000), 16000)
        bad.write_text("this is not audio")
        shots = Path(os.environ.get("AUDIOTOK_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url)
            page.locator("#codec-in input[type=file]").set_input_files(str(good))
            page.wait_for_timeout(1000)
            page.locator("#codec-run").click()
            page.locator("#codec-metrics").get_by_text("PESQ").wait_for(timeout=60000)
            assert "75.0 tokens/s" in page.locator("#codec-summary").inner_text()
            page.locator("#codec-rec audio, #codec-rec [data-testid]").first.wait_for(timeout=30000)
            page.screenshot(path=str(shots / "codec-ok.png"), full_page=True)
            page.goto(url)
            page.locator("#codec-in input[type=file]").set_input_files(str(bad))
            page.wait_for_timeout(1000)
            page.locator("#codec-run").click()
            page.locator("#codec-summary").get_by_text("cannot be used").wait_for(timeout=30000)
            assert "Traceback" not in page.content()
            page.screenshot(path=str(shots / "codec-error.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tts_tab_handlers(tmp_path, monkeypatch):
    from tests.tiny_tts import build_tiny_tts

    monkeypatch.setenv("AUDIOTOK_TTS", str(tmp_path / "none"))
    app.get_tts.cache_clear()
    with pytest.raises(app.DemoError, match="No TTS model"):
        app.tts_synthesize("Hello.")
    tts = build_tiny_tts()
    tts.semantic.save(tmp_path / "semantic.safetensors")
    folder = tts.save_pretrained(tmp_path / "tts", semantic=str(tmp_path / "semantic.safetensors"))
    monkeypatch.setenv("AUDIOTOK_TTS", str(folder))
    app.get_tts.cache_clear()
    try:
        out = app.tts_synthesize("The quick brown fox.", steps=2)
        sr, wav = out["audio"]
        assert sr == 24000 and len(wav) > 0 and "s of speech" in out["message"]
        chunks = list(app.tts_stream("The quick brown fox.", steps=2))
        assert chunks and all(c[0] == 24000 for c in chunks)
        with pytest.raises(app.DemoError, match="text"):
            app.tts_synthesize("  ")
        audio.save(tmp_path / "p.wav", speechlike(24000, 24000), 24000)
        with pytest.raises(app.DemoError, match="transcript"):
            app.tts_synthesize("Hello.", str(tmp_path / "p.wav"), "")
    finally:
        app.get_tts.cache_clear()


def test_semantic_tab_shows_the_tokenizers_own_transcript_and_codec_choices(tmp_path, monkeypatch, codec_file):
    from audiotok.checkpoint import save_model
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    torch.manual_seed(0)
    cfg = SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32, quantize_after=1)
    asr = SupervisedTokenizerASR(cfg).eval()
    asr.export_tokenizer().save(tmp_path / "tok.safetensors")
    save_model(asr, tmp_path / "asr.safetensors")
    audio.save(tmp_path / "a.wav", speechlike(16000, 16000), 16000)
    monkeypatch.setenv("AUDIOTOK_S3", str(tmp_path / "tok.safetensors"))
    monkeypatch.setenv("AUDIOTOK_S3_ASR", str(tmp_path / "asr.safetensors"))
    app.get_semantic.cache_clear()
    app.get_semantic_asr.cache_clear()
    try:
        out = app.semantic_tokens(str(tmp_path / "a.wav"))
        assert "semantic tokens" in out["summary"] and isinstance(out["transcript"], str)
        assert "No ASR model" not in out["transcript"]
    finally:
        app.get_semantic.cache_clear()
        app.get_semantic_asr.cache_clear()
    # codec choices: the bundled codecs by name, or "custom" for AUDIOTOK_CODEC
    for name in ("codec", "codec-40"):
        (tmp_path / "assets" / name).mkdir(parents=True)
        (tmp_path / "assets" / name / "model.safetensors").write_bytes(codec_file.read_bytes())
    monkeypatch.setattr(registry, "ASSETS", tmp_path / "assets")
    monkeypatch.delenv("AUDIOTOK_CODEC", raising=False)
    assert app.codec_choices() == ["codec", "codec-40"]
    app.get_codec.cache_clear()
    try:
        out = app.codec_roundtrip(str(tmp_path / "a.wav"), "codec-40")
        assert "tokens" in out["summary"]
    finally:
        app.get_codec.cache_clear()
    monkeypatch.setenv("AUDIOTOK_CODEC", str(codec_file))
    assert app.codec_choices() == ["custom"]


def test_semantic_tab_runs_on_the_bundled_default(tmp_path, monkeypatch):
    monkeypatch.delenv("AUDIOTOK_S3", raising=False)
    monkeypatch.setenv("AUDIOTOK_S3_ASR", str(tmp_path / "absent.safetensors"))  # the ASR half is not bundled
    audio.save(tmp_path / "a.wav", speechlike(2 * 16000, 16000), 16000)
    app.get_semantic.cache_clear()
    app.get_semantic_asr.cache_clear()
    try:
        out = app.semantic_tokens(str(tmp_path / "a.wav"))
    finally:
        app.get_semantic.cache_clear()
        app.get_semantic_asr.cache_clear()
    assert out["summary"].startswith("**50 semantic tokens** (25 tokens/s, 4096 codes)")
    assert "No ASR model" in out["transcript"]
    from audiotok.semantic import SemanticTokenizer

    assert SemanticTokenizer.from_pretrained().codebook_size == 4096  # the bundled default by name
