"""Official names and Hugging Face hub ids through the one registry, offline.

Each test lays out a hub cache in ``tmp_path`` the way ``huggingface_hub`` writes one (``models--org--name/blobs/
<sha256>``, ``snapshots/<commit>/<file>`` links to the blobs, ``refs/<branch>``), sets ``HF_HOME`` and
``HF_HUB_OFFLINE=1``, and checks that a model loaded by id is the model loaded from the same file by path. The
official files are tiny random-weight ones in the released layouts: the WavTokenizer test vectors (a Lightning
``.ckpt`` + YAML) and S3Tokenizer ``.onnx`` files written as the ``s3tokenizer`` package's ``onnx2torch`` reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from audiotok import registry
from audiotok.checkpoint import CheckpointError
from audiotok.codec import Codec
from audiotok.registry import ModelNotFound
from audiotok.semantic import OFFICIAL, SemanticTokenizer
from tests.conftest import WAVTOKENIZER_VECTORS as VECTORS
from tests.conftest import speechlike

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
needs_vectors = pytest.mark.skipif(not (VECTORS / "model.ckpt").exists(), reason=f"no test vectors at {VECTORS}")
TINY_S3 = dict(dim=128, n_heads=2, n_layers=2)


# ------------------------------------------------------------------------------------------------ hub cache
def add_to_hub(cache: Path, repo: str, files: dict[str, Path | bytes], ref: str = "main") -> Path:
    """Put ``files`` (repo path -> source file or bytes) into ``cache`` as revision ``ref`` of ``repo``, in
    huggingface_hub's layout; big source files become links (the blob holds the bytes through them)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(f"{repo}@{ref}:{sorted(files)}".encode()).hexdigest()
    snapshot = root / "snapshots" / commit
    for rel, src in files.items():
        data = src if isinstance(src, bytes) else None
        digest = hashlib.sha256(data if data is not None else Path(src).read_bytes()).hexdigest()
        blob = root / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            if data is not None:
                blob.write_bytes(data)
            elif Path(src).stat().st_size > 20_000_000:
                blob.symlink_to(Path(src).resolve())
            else:
                blob.write_bytes(Path(src).read_bytes())
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return snapshot


def tree(folder: Path, under: str = "") -> dict[str, Path]:
    """Every file below ``folder`` by its path relative to it (prefixed with ``under/``)."""
    prefix = f"{under}/" if under else ""
    return {prefix + p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty offline hub cache under ``$HF_HOME``."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    (tmp_path / "hf" / "hub").mkdir(parents=True)
    return tmp_path / "hf" / "hub"


# ------------------------------------------------------------------------------- S3Tokenizer ONNX files
_CONVS = {  # the conv initializer names of each release (s3tokenizer's onnx2torch matches them by name)
    "speech_tokenizer_v1": [f"onnx::Conv_{1519 + i}" for i in range(4)],
    "speech_tokenizer_v1_25hz": [f"encoders.conv{i}.{p}" for i in (1, 2) for p in ("weight", "bias")],
    "speech_tokenizer_v2_25hz": [f"onnx::Conv_{2216 + i}" for i in range(4)],
}


def tiny_s3(name: str, seed: int = 0) -> SemanticTokenizer:
    """A tiny random tokenizer of an official architecture (every weight random, the v1 codebook included)."""
    torch.manual_seed(seed)
    model = SemanticTokenizer(dataclasses.replace(OFFICIAL[name], **TINY_S3)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
        if "v2" not in name:
            model.quantizer._codebook.embed.normal_()
    return model


def write_s3_onnx(model: SemanticTokenizer, path: Path, release: str) -> Path:
    """``model``'s weights as an ONNX graph in ``release``'s layout: initializers named and consumed by nodes as in
    the released exports (convs by initializer name, blocks by node path with (in, out) matrices, v1 LayerNorms
    as Mul + Add_1 after an eps Add, v2 as LayerNormalization, the v1 codebook under ``.../_codebook/Pow_1``)."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("mel.")}
    nodes, inits = [], []

    def init(name: str, t: torch.Tensor) -> str:
        inits.append(numpy_helper.from_array(t.detach().float().contiguous().numpy(), name))
        return name

    def node(op: str, name: str, inputs: list[str], **attrs) -> None:
        nodes.append(helper.make_node(op, inputs, [f"y{len(nodes)}"], name=name, **attrs))

    c = _CONVS[release]
    for i in (1, 2):
        w, b = state[f"encoder.conv{i}.weight"], state[f"encoder.conv{i}.bias"]
        stride = model.config.conv1_stride if i == 1 else 2
        node("Conv", f"/conv{i}/Conv", ["x", init(c[2 * i - 2], w), init(c[2 * i - 1], b)], strides=[stride])
    v2 = model.config.version == "v2"
    if not v2:
        node("Add", "/Add", ["x", init("encoders.positional_embedding", state["encoder.positional_embedding"])])
    for b in range(model.config.n_layers):
        p = f"encoder.blocks.{b}."
        for ln in ("attn_ln", "mlp_ln"):
            w, bias = state[p + ln + ".weight"], state[p + ln + ".bias"]
            if v2:
                node(
                    "LayerNormalization",
                    f"/blocks.{b}/{ln}/LayerNormalization",
                    ["x", init(f"w{b}{ln}", w)] + [init(f"b{b}{ln}", bias)],
                )
            else:
                node("Add", f"/blocks.{b}/{ln}/Add", ["x", "eps"])
                node("Mul", f"/blocks.{b}/{ln}/Mul", ["x", init(f"w{b}{ln}", w)])
                node("Add", f"/blocks.{b}/{ln}/Add_1", ["x", init(f"b{b}{ln}", bias)])
        for lin in ("attn/query", "attn/key", "attn/value", "attn/out", "mlp/mlp.0", "mlp/mlp.2"):
            key = p + lin.replace("/", ".").replace("mlp.mlp", "mlp")
            node("MatMul", f"/blocks.{b}/{lin}/MatMul", ["x", init(f"m{b}{lin}", state[key + ".weight"].t())])
            if key + ".bias" in state:
                node("Add", f"/blocks.{b}/{lin}/Add", ["x", init(f"a{b}{lin}", state[key + ".bias"])])
        if v2:
            node("Conv", f"/blocks.{b}/attn/fsmn_block/Conv", ["x", init(f"f{b}", state[p + "attn.fsmn_block.weight"])])
    if v2:
        node(
            "MatMul",
            "/quantizer/project_in/MatMul",
            ["x", init("onnx::MatMul_2536", state["quantizer._codebook.project_down.weight"].t())],
        )
        node(
            "Add",
            "/quantizer/project_in/Add",
            ["x", init("quantizer.project_in.bias", state["quantizer._codebook.project_down.bias"])],
        )
    else:
        embed = init("embed_t", state["quantizer._codebook.embed"].t())
        node("Pow", "/quantizer/rq/model/layers.0/_codebook/Pow_1", [embed, "two"])
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "s3", [value("x", onnx.TensorProto.FLOAT, None)], [value(f"y{len(nodes) - 1}", 1, None)], inits
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def _wavs() -> list[torch.Tensor]:
    return [speechlike(16000 * 2 + 77, 16000, seed=1), speechlike(16000, 16000, seed=2)]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_onnx_reader_matches_the_s3tokenizer_package_and_the_model(name, tmp_path):
    from audiotok.semantic.official import onnx_state_dict

    model = tiny_s3(name)
    path = write_s3_onnx(model, tmp_path / f"{name}.onnx", name)
    ours = onnx_state_dict(onnx.load(str(path)))
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("mel.")}
    assert ours.keys() == expected.keys() and all(torch.equal(ours[k], expected[k]) for k in ours)
    s3tokenizer = pytest.importorskip("s3tokenizer")  # the fixture is in the layout the reference reads
    ref = s3tokenizer.onnx2torch(str(path), None, False)
    assert ref.keys() == ours.keys() and all(torch.equal(ref[k], ours[k]) for k in ref)
    loaded = SemanticTokenizer.from_pretrained(path)  # by path: the architecture read from the graph
    assert loaded.config.conv1_stride == OFFICIAL[name].conv1_stride and loaded.config.version == OFFICIAL[name].version
    for a, b in zip(loaded.encode(_wavs()), model.encode(_wavs()), strict=True):
        assert torch.equal(a, b)


def test_s3_onnx_by_hub_id_equals_by_path(hub, tmp_path):
    name = "speech_tokenizer_v2_25hz"
    path = write_s3_onnx(tiny_s3(name), tmp_path / "speech_tokenizer_v2.onnx", name)
    campplus = write_s3_onnx(tiny_s3("speech_tokenizer_v1", seed=1), tmp_path / "campplus.onnx", "speech_tokenizer_v1")
    add_to_hub(
        hub,
        "FunAudioLLM/CosyVoice2-0.5B",
        {"speech_tokenizer_v2.onnx": path, "campplus.onnx": campplus, "cosyvoice2.yaml": b"llm: {}\n"},
    )
    by_path = SemanticTokenizer.from_pretrained(path)
    by_id = SemanticTokenizer.from_pretrained("FunAudioLLM/CosyVoice2-0.5B")  # the speech_tokenizer*.onnx
    assert by_id.codebook_size == 6561 and by_id.frame_rate == 25.0
    assert by_id.weights_sha256 == by_path.weights_sha256
    for a, b in zip(by_id.encode(_wavs()), by_path.encode(_wavs()), strict=True):
        assert torch.equal(a, b)
    model, tok_name = registry.load_tokenizer("FunAudioLLM/CosyVoice2-0.5B:speech_tokenizer_v2.onnx")
    assert tok_name == "FunAudioLLM/CosyVoice2-0.5B:speech_tokenizer_v2.onnx"
    assert torch.equal(model.encode(_wavs())[0], by_path.encode(_wavs())[0])


def test_official_s3_name_from_the_s3tokenizer_cache(hub, tmp_path, monkeypatch):
    from audiotok.semantic import official

    name = "speech_tokenizer_v1_25hz"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "xdg" / "s3tokenizer"  # the package's cache: $XDG_CACHE_HOME/s3tokenizer/<name>.onnx
    root.mkdir(parents=True)
    cached = write_s3_onnx(tiny_s3(name), root / f"{name}.onnx", name)
    # a file that is not the release's is not used (the package re-downloads it): offline, a clear miss
    with pytest.raises(
        ModelNotFound,
        match=r"speech_tokenizer_v1_25hz: not in the s3tokenizer cache .*sha256.*"
        r"HF_HUB_OFFLINE.*run once with network",
    ):
        SemanticTokenizer.from_pretrained(name)
    with pytest.raises(ModelNotFound, match="is absent"):
        SemanticTokenizer.from_pretrained("speech_tokenizer_v1")
    # with the tiny file's hash as the release's, the name loads it, as the path does
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    monkeypatch.setitem(official.RELEASES, name, official.S3Release("https://unused.invalid", digest))
    by_name = SemanticTokenizer.from_pretrained(name)
    by_path = SemanticTokenizer.from_pretrained(cached)
    assert by_name.frame_rate == 25.0 and by_name.codebook_size == 4096
    for a, b in zip(by_name.encode(_wavs()), by_path.encode(_wavs()), strict=True):
        assert torch.equal(a, b)
    assert registry.load_tokenizer(name)[1] == name  # token files record the official name
    # cache_dir= is the package's download_root
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / f"{name}.onnx").write_bytes(cached.read_bytes())
    assert SemanticTokenizer.from_pretrained(name, cache_dir=other).weights_sha256 == digest


# ------------------------------------------------------------------------------------------- WavTokenizer
@pytest.fixture(scope="module")
def wt_reference() -> torch.Tensor:
    """Codes of the test-vector input by the test-vector checkpoint loaded by path."""
    if not (VECTORS / "model.ckpt").exists():
        pytest.skip(f"no test vectors at {VECTORS}")
    model = Codec.from_pretrained(VECTORS / "model.ckpt", config=VECTORS / "config.yaml")
    return model.encode(_wt_input())[0]


def _wt_input() -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.load(VECTORS / "input.npy"))[:, :24000]


@needs_vectors
def test_wavtokenizer_repo_with_its_yaml(hub, wt_reference):
    add_to_hub(
        hub,
        "someone/wavtokenizer-tiny",
        {
            "wavtokenizer_tiny_320.ckpt": VECTORS / "model.ckpt",
            "config.yaml": VECTORS / "config.yaml",
            "README.md": b"x",
        },
    )
    model = Codec.from_pretrained("someone/wavtokenizer-tiny")
    assert torch.equal(model.encode(_wt_input())[0], wt_reference)


@needs_vectors
def test_wavtokenizer_releases_without_yaml_use_the_built_in_config(hub, wt_reference, monkeypatch):
    from audiotok.codec import official
    from audiotok.codec.model import codec_config

    # the built-in configs are the released small ones
    assert official.config_from_dict(official.release_config(320)) == codec_config("wavtokenizer-75")
    assert official.config_from_dict(official.release_config(600)) == codec_config("wavtokenizer-40")
    # the test-vector checkpoint is tiny: stand its config in for the release's
    tiny = yaml.safe_load((VECTORS / "config.yaml").read_text())
    monkeypatch.setattr(official, "release_config", lambda hop: tiny if hop == 320 else pytest.fail("hop"))
    add_to_hub(
        hub,
        "novateur/WavTokenizer-large-speech-75token",
        {"wavtokenizer_large_speech_320_v2.ckpt": VECTORS / "model.ckpt"},
    )
    model = Codec.from_pretrained("novateur/WavTokenizer-large-speech-75token")
    assert torch.equal(model.encode(_wt_input())[0], wt_reference)
    # two checkpoints in one repo: name one
    add_to_hub(
        hub,
        "novateur/WavTokenizer",
        {
            "WavTokenizer_small_320_24k_4096.ckpt": VECTORS / "model.ckpt",
            "WavTokenizer_small_600_24k_4096.ckpt": b"not read",
        },
    )
    with pytest.raises(ModelNotFound, match="holds 2 WavTokenizer checkpoints.*name one, e.g. novateur/WavTokenizer:"):
        Codec.from_pretrained("novateur/WavTokenizer")
    model, name = registry.load_tokenizer("novateur/WavTokenizer:WavTokenizer_small_320_24k_4096.ckpt")
    assert name == "novateur/WavTokenizer:WavTokenizer_small_320_24k_4096.ckpt"
    assert torch.equal(model.encode(_wt_input())[0], wt_reference)


# ------------------------------------------------------------------------------------------- our formats
def _tiny_codec(seed: int) -> Codec:
    from audiotok.codec.model import codec_config

    torch.manual_seed(seed)
    model = Codec(codec_config("tiny"))
    model.quantizer.init_from_latents(torch.randn(200, 16), iters=3)
    return model.eval()


def test_bundled_folders_uploaded_as_is_load_by_id(hub):
    wav = speechlike(24000, 24000)
    for name in ("codec", "semantic", "speaker"):
        add_to_hub(hub, f"someone/audiotok-{name}", tree(registry.ASSETS / name))
    bundled, by_id = Codec.from_pretrained("codec"), Codec.from_pretrained("someone/audiotok-codec")
    assert torch.equal(by_id.encode(wav)[0], bundled.encode(wav)[0])
    assert registry.load_tokenizer("someone/audiotok-codec")[1] == "someone/audiotok-codec"
    from audiotok.speaker import SpeakerEncoder

    for cls, name in ((SemanticTokenizer, "semantic"), (SpeakerEncoder, "speaker")):
        a, b = cls.from_pretrained(name).state_dict(), cls.from_pretrained(f"someone/audiotok-{name}").state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_revisions_and_folders_inside_a_repo(hub, tmp_path):
    wav = speechlike(24000, 24000)
    first, second = _tiny_codec(0), _tiny_codec(1)
    add_to_hub(hub, "someone/codecs", {"model.safetensors": first.save(tmp_path / "a.safetensors")})
    tagged = add_to_hub(hub, "someone/codecs", {"model.safetensors": second.save(tmp_path / "b.safetensors")}, "v2")
    assert torch.equal(Codec.from_pretrained("someone/codecs").encode(wav)[0], first.encode(wav)[0])
    for rev in ("v2", tagged.name):  # a tag, a commit hash
        assert torch.equal(Codec.from_pretrained("someone/codecs", revision=rev).encode(wav)[0], second.encode(wav)[0])
    add_to_hub(hub, "someone/models", {"tiny/model.safetensors": tmp_path / "b.safetensors", "tiny/card.md": b"c"})
    assert torch.equal(Codec.from_pretrained("someone/models:tiny").encode(wav)[0], second.encode(wav)[0])
    # cache_dir= instead of HF_HOME
    other = tmp_path / "other-cache"
    add_to_hub(other, "else/codec", {"model.safetensors": tmp_path / "a.safetensors"})
    assert torch.equal(Codec.from_pretrained("else/codec", cache_dir=other).encode(wav)[0], first.encode(wav)[0])


def test_tts_folder_and_whisper_file_by_hub_id(hub, tmp_path):
    from tests.tiny_tts import OPTS, build_tiny_tts
    from tts.pipeline import TTS

    tts = build_tiny_tts()
    tts.semantic.save(tmp_path / "semantic.safetensors")
    folder = tts.save_pretrained(tmp_path / "tts", semantic="semantic.safetensors")
    (tmp_path / "semantic.safetensors").rename(folder / "semantic.safetensors")
    add_to_hub(hub, "someone/tiny-tts", tree(folder))
    local, by_id = TTS.from_pretrained(folder), TTS.from_pretrained("someone/tiny-tts")
    text = "The quick brown fox."
    assert torch.equal(by_id.synthesize(text, options=OPTS), local.synthesize(text, options=OPTS))

    from audiotok.whisper import Whisper, load_whisper, new_whisper, save_openai, small_dims

    model = new_whisper(small_dims(seconds=1.0, n_state=32, n_head=2, n_layer=1, n_text_ctx=16), seed=0)
    add_to_hub(hub, "someone/whisper-tiny", {"tiny.pt": save_openai(model, tmp_path / "w.pt")})
    mel, tokens = torch.randn(1, 80, 100), torch.tensor([[50258, 50259]])
    for loaded in (
        load_whisper("someone/whisper-tiny:tiny.pt"),
        Whisper.from_pretrained("someone/whisper-tiny:tiny.pt"),
    ):
        assert torch.equal(loaded(mel, tokens), load_whisper(tmp_path / "w.pt")(mel, tokens))


# ---------------------------------------------------------------------------------------- misses and the CLI
def test_misses_say_what_was_tried_and_what_to_do(hub, tmp_path):
    with pytest.raises(
        ModelNotFound,
        match=r"'nobody/nothing'.*not in the local cache .*hub is unreachable "
        r"\(HF_HUB_OFFLINE is set\): pass a path, or run once with network",
    ):
        Codec.from_pretrained("nobody/nothing")
    add_to_hub(hub, "someone/readme-only", {"README.md": b"# nothing here\n"})
    with pytest.raises(ModelNotFound, match="no model this suite reads .*README.md"):
        Codec.from_pretrained("someone/readme-only")
    with pytest.raises(ModelNotFound, match="no file or folder 'nope.ckpt'"):
        Codec.from_pretrained("someone/readme-only:nope.ckpt")
    with pytest.raises(ModelNotFound, match="not a bundled model.*nor a hub id"):
        Codec.from_pretrained(tmp_path / "absent.safetensors")
    add_to_hub(hub, "someone/codec", {"model.safetensors": _tiny_codec(0).save(tmp_path / "c.safetensors")})
    with pytest.raises(CheckpointError, match="not a semantic model"):
        SemanticTokenizer.from_pretrained("someone/codec")
    with pytest.raises(ValueError, match="revision='v1' applies to hub ids"):
        Codec.from_pretrained("codec", revision="v1")


def test_cli_miss_is_one_line_and_exit_code_2(hub, wav_tree, tmp_path, capsys):
    from audiotok.cli import main

    assert main(["encode", str(wav_tree), "-o", str(tmp_path / "t"), "--model", "nobody/nothing", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "run once with network" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_cli_encode_with_a_hub_id(hub, wav_tree, tmp_path):
    """``audiotok encode --model org/name`` in a fresh process (the environment as a user sets it)."""
    from audiotok.cli import main
    from audiotok.tokens import TOKEN_SUFFIX, load_tokens

    add_to_hub(hub, "someone/audiotok-codec", tree(registry.ASSETS / "codec"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "audiotok", "encode", str(wav_tree / "spk1"), "-o", str(tmp_path / "hub"), "--quiet"]
    done = subprocess.run(
        [*cmd, "--model", "someone/audiotok-codec", "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert main(["encode", str(wav_tree / "spk1"), "-o", str(tmp_path / "bundled"), "--quiet", "--workers", "0"]) == 0
    for item in ("spk1_0", "spk1_1"):
        by_id, bundled = (load_tokens(tmp_path / d / (item + TOKEN_SUFFIX)) for d in ("hub", "bundled"))
        assert by_id.model.tokenizer == "someone/audiotok-codec" and bundled.model.tokenizer == "codec"
        assert by_id.model.model_sha256 == bundled.model.model_sha256
        assert (by_id.codes == bundled.codes).all()


def test_every_model_class_has_the_one_from_pretrained():
    from audiotok.semantic.supervised import SupervisedTokenizerASR
    from audiotok.speaker import SpeakerEncoder
    from audiotok.whisper import Whisper
    from tts.flow import FlowDecoder
    from tts.lm import TTSLM
    from tts.pipeline import TTS
    from tts.vocoder import Vocoder

    classes = (
        Codec,
        SemanticTokenizer,
        SupervisedTokenizerASR,
        SpeakerEncoder,
        Whisper,
        TTS,
        TTSLM,
        FlowDecoder,
        Vocoder,
    )
    for cls in classes:
        params = inspect.signature(cls.from_pretrained).parameters
        assert list(params)[:4] == ["name_or_path", "device", "revision", "cache_dir"], cls
        assert cls.registry_kind in registry.KINDS
        # one implementation (the registry's), except the semantic tokenizer's shim for s3tokenizer state dicts
        if cls is not SemanticTokenizer:
            assert cls.from_pretrained.__func__ is registry.Pretrained.from_pretrained.__func__, cls
