"""Files from strangers: hub ids mean loading files someone else made.

A fuzz: from one valid tiny file of each format we read (a token file, its JSONL line and shard; our safetensors
checkpoints of a tiny codec and a tiny semantic tokenizer; a WavTokenizer Lightning ``.ckpt``; an openai-whisper
``.pt``; an S3Tokenizer ``.onnx``), a seeded RNG writes :data:`N_CASES` mutated files across kinds (truncated, header
size wrong or huge, header JSON corrupted, dtype and shapes changed, codes out of range, ``n_samples`` of 10^12, a
codebook size that disagrees with the model, byte flips, empty files, pickles that call code, ...). Each is read
through the public loader (the token readers, :func:`audiotok.registry.load`) and must either load (a flipped byte
in float data is still a valid file: "accepted") or raise a :class:`TokenFileError` / :class:`CheckpointError` whose
message names the file: never another exception type, a crash, a hang (each case gets 2 s; an alarm stops a real
hang) or a large allocation (the address space is capped at the start plus 3 GiB while the cases run). The count by
kind is printed and is in the failure message. ``audiotok decode`` gets a few mutated token files through its
Python entry point.

The mutators are in :mod:`tests.fuzz_mutations`; the static check that no loader can run code (``torch.load``
without ``weights_only=True``, unpickling, unsafe YAML, ``trust_remote_code``) is ``test_no_unsafe_loaders``.

The tiny files reuse the helpers of ``test_hub_resolvers`` (tiny codec, tiny S3 models, the ONNX writer: ``onnx`` is a
core dependency, so the ``.onnx`` format is fuzzed too) and its small Whisper dims; the WavTokenizer ``.ckpt`` is a
tiny config's model written in the released key layout (the inverse of
:func:`audiotok.codec.official.convert_state_dict`).
"""

from __future__ import annotations

import dataclasses
import random
import resource
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from audiotok import registry
from audiotok.checkpoint import CheckpointError
from audiotok.tokens import (
    TOKEN_SUFFIX,
    TokenFileError,
    TokenRecord,
    iter_shard,
    iter_token_inputs,
    load_tokens,
    model_identity,
    read_token_header,
    save_tokens,
    to_json_line,
)
from tests.conftest import speechlike
from tests.fuzz_mutations import (
    JSONL_MUTATORS,
    ONNX_MUTATORS,
    SHARD_MUTATORS,
    TOKEN_MUTATORS,
    _codes_of,
    _shard,
    _st_meta,
    _token_bytes,
    checkpoint_mutators,
    codes_out_of_range,
    header_len_huge,
    st_join,
    st_split,
    wavtokenizer_mutators,
    whisper_mutators,
)
from tests.unit.test_hub_resolvers import _tiny_codec, tiny_s3, write_s3_onnx

N_CASES = 1000
SEED = 20251207
CASE_SECONDS = 2.0  # each case must finish well within this (a loaded 2-core box included)
ALARM_SECONDS = 20  # a real hang is stopped here and reported as one
MEMORY_HEADROOM = 3 << 30  # bytes of address space the cases may add
CLEAR = (TokenFileError, CheckpointError)  # the project's file errors (ModelNotFound is a CheckpointError)


# ------------------------------------------------------------------------------------------- the valid files
def _wavtokenizer_config() -> dict:
    """A tiny config in the released YAML's layout: one downsampling (hop 2), 16 codes, a narrow decoder."""
    from audiotok.codec.official import release_config

    cfg = release_config(320)
    args = cfg["model"]["init_args"]
    args["feature_extractor"]["init_args"].update(dowmsamples=[2], vq_bins=16)
    args["backbone"]["init_args"].update(dim=32, intermediate_dim=64, num_layers=1)
    args["head"]["init_args"].update(dim=32, n_fft=8, hop_length=2)
    return cfg


def _released_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our codec's state dict under the released checkpoint's names (inverse of ``convert_state_dict``)."""
    out = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            name = "feature_extractor.encodec.encoder." + key[len("encoder.") :]
            name = name.replace(".conv.parametrizations.weight.original0", ".conv.conv.weight_g")
            name = name.replace(".conv.parametrizations.weight.original1", ".conv.conv.weight_v")
            out[name.replace(".conv.bias", ".conv.conv.bias")] = value
        elif key.startswith("quantizer.vq._codebook."):
            field = key.rsplit(".", 1)[1]
            base = "feature_extractor.encodec.quantizer.vq.layers.0._codebook."
            if field == "initted":
                out[base + "inited"] = torch.ones(1)
            else:
                out[base + field] = value.squeeze(0)
        else:
            out[key] = value
    return out


@dataclasses.dataclass
class Valid:
    """The valid tiny files the mutations start from."""

    root: Path
    codec: Path  # our safetensors checkpoint of a tiny codec
    semantic: Path  # ... of a tiny semantic tokenizer
    tokens: Path  # a token file made by ``codec``
    wavtokenizer: Path  # a WavTokenizer .ckpt (its config: ``wt_config``)
    wt_config: dict
    whisper: Path  # an openai-whisper .pt
    onnx: Path  # an S3Tokenizer .onnx


def _canonical(path: Path) -> Path:
    """A safetensors file rewritten with its header keys sorted (safetensors writes them in hash order, which
    changes from process to process), so that the seeded mutations are the same in every run."""
    path.write_bytes(st_join(*st_split(path.read_bytes())))
    return path


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Valid:
    from audiotok.codec.model import Codec
    from audiotok.codec.official import config_from_dict, convert_state_dict
    from audiotok.whisper import new_whisper, save_openai, small_dims

    root = tmp_path_factory.mktemp("valid")
    codec_path = _canonical(_tiny_codec(0).save(root / "codec.safetensors"))
    codec = registry.load(codec_path, "codec")  # as `audiotok decode --model` loads it (weights_sha256 set)
    codes, _ = codec.encode(speechlike(6000, 24000))
    varied = (np.arange(codes.shape[-1]) * 7 + 3) % codec.codebook_size  # a random codec's codes are all one code
    record = TokenRecord(varied, model_identity(codec, "tiny-codec"), 6000, "utt.wav")  # (a path would vary)
    tokens = _canonical(save_tokens(root / f"utt{TOKEN_SUFFIX}", record))
    semantic = _canonical(tiny_s3("speech_tokenizer_v1_25hz").save(root / "semantic.safetensors"))
    onnx_path = write_s3_onnx(tiny_s3("speech_tokenizer_v1"), root / "speech_tokenizer_v1.onnx", "speech_tokenizer_v1")

    wt_config = _wavtokenizer_config()
    torch.manual_seed(0)
    wt = Codec(config_from_dict(wt_config)).eval()
    released = _released_layout(wt.state_dict())
    converted = convert_state_dict(released)
    assert converted.keys() == wt.state_dict().keys()  # the inverse is right
    wt_path = root / "wavtokenizer_tiny.ckpt"
    torch.save({"state_dict": released, "pytorch-lightning_version": "2.1.0", "global_step": 0}, wt_path)
    loaded = registry.load(wt_path, "codec", config=wt_config).state_dict()
    same = [torch.equal(loaded[k], v) for k, v in wt.state_dict().items() if not k.endswith("initted")]
    assert all(same) and loaded["quantizer.vq._codebook.initted"]  # the released layout (k-means done: inited=1)

    dims = dataclasses.replace(small_dims(seconds=0.2, n_state=32, n_head=2, n_layer=1, n_text_ctx=8), n_vocab=64)
    whisper = save_openai(new_whisper(dims, seed=0), root / "whisper_tiny.pt")
    return Valid(root, codec_path, semantic, tokens, wt_path, wt_config, whisper, onnx_path)


# ---------------------------------------------------------------------------------------------- the runner
class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no loader's ``except Exception`` swallows it."""


def _on_alarm(signum, frame):
    raise _Hang()


def run_case(load: Callable[..., object], path: Path, options: dict) -> tuple[str, str]:
    """``("accepted" | "rejected_clearly" | "bad", detail)`` of loading ``path``."""
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, ALARM_SECONDS)
    try:
        load(path, **options)
        outcome, detail = "accepted", ""
    except CLEAR as err:
        msg = str(err)
        if str(path) not in msg:
            outcome, detail = "bad", f"{type(err).__name__} without the path: {msg[:300]}"
        elif "allocate" in msg or "memory" in msg.lower():
            outcome, detail = "bad", f"allocation failure: {msg[:300]}"
        else:
            outcome, detail = "rejected_clearly", msg
    except _Hang:
        outcome, detail = "bad", f"hang (stopped after {ALARM_SECONDS} s)"
    except BaseException as err:  # noqa: BLE001 - anything else is what the fuzz is looking for
        outcome, detail = "bad", f"{type(err).__module__}.{type(err).__name__}: {str(err)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - t0
    if elapsed > CASE_SECONDS and outcome != "bad":
        outcome, detail = "bad", f"took {elapsed:.1f} s"
    return outcome, detail


def _load_token_file(path: Path) -> None:
    """Both token-file readers: the header alone (``audiotok info``, resume checks), then the whole file (which
    must refuse what the header reader refused, and more: the codes)."""
    try:
        read_token_header(path)
    except TokenFileError as err:
        if str(path) not in str(err):
            raise
    load_tokens(path)


def _load_jsonl(path: Path) -> None:
    list(iter_token_inputs([str(path)]))


def _load_shard(path: Path) -> None:
    list(iter_shard(path))


def _registry_loader(kind: str) -> Callable[..., object]:
    def load(path: Path, **options):
        return registry.load(path, kind, **options)

    return load


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_thousand_mutated_files_are_clear_errors_or_load(valid, tmp_path):
    marker = tmp_path / "code-ran"
    token_line = to_json_line("utt", load_tokens(valid.tokens)).encode()
    token_shard = _shard({f"utt{TOKEN_SUFFIX}": valid.tokens.read_bytes(), "utt.txt": b"hello"})
    wt = _registry_loader("codec")
    formats = [  # (name, share of the cases, valid bytes, suffix, mutators, loader, loader options)
        ("tokens", 300, valid.tokens.read_bytes(), TOKEN_SUFFIX, TOKEN_MUTATORS, _load_token_file, {}),
        ("tokens-jsonl", 60, token_line, ".jsonl", JSONL_MUTATORS, _load_jsonl, {}),
        ("tokens-shard", 40, token_shard, ".tar", SHARD_MUTATORS, _load_shard, {}),
        (
            "codec-safetensors",
            150,
            valid.codec.read_bytes(),
            ".safetensors",
            checkpoint_mutators(["quantizer", "codebook_size"], ["decoder", "n_layers"]),
            _registry_loader("codec"),
            {},
        ),
        (
            "semantic-safetensors",
            100,
            valid.semantic.read_bytes(),
            ".safetensors",
            checkpoint_mutators(["codebook_size"], ["n_layers"]),
            _registry_loader("semantic"),
            {},
        ),
        (
            "wavtokenizer-ckpt",
            125,
            valid.wavtokenizer.read_bytes(),
            ".ckpt",
            wavtokenizer_mutators(valid.wt_config, marker),
            wt,
            {"config": valid.wt_config},
        ),
        (
            "whisper-pt",
            125,
            valid.whisper.read_bytes(),
            ".pt",
            whisper_mutators(marker),
            _registry_loader("whisper"),
            {},
        ),
        ("s3-onnx", 100, valid.onnx.read_bytes(), ".onnx", ONNX_MUTATORS, _registry_loader("semantic"), {}),
    ]
    assert sum(f[1] for f in formats) == N_CASES
    # the valid files load (and pay the one-time imports outside the timed cases)
    for name, _, data, suffix, _, load, options in formats:
        path = tmp_path / f"valid-{name}{suffix}"
        path.write_bytes(data)
        outcome, detail = run_case(load, path, {**options})
        assert outcome == "accepted", (name, detail)

    rng = random.Random(SEED)
    counts: dict[str, Counter] = defaultdict(Counter)
    bad: list[str] = []
    examples: dict[str, str] = {}  # one message of each kind, for reading
    cases = tmp_path / "cases"
    cases.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_size()
    limit = vm + MEMORY_HEADROOM if vm else resource.RLIM_INFINITY  # (no /proc: no cap, the RSS check below stays)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    slowest = (0.0, "")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    t_start = time.perf_counter()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        for name, n, data, suffix, mutators, load, options in formats:
            kinds = sorted(mutators)
            for i in range(n):
                kind = kinds[i % len(kinds)]
                made = mutators[kind](rng, data)
                body, extra = made if isinstance(made, tuple) else (made, {})
                path = cases / f"{name}-{i:03d}-{kind}{suffix}"
                path.write_bytes(body)
                t0 = time.perf_counter()
                outcome, detail = run_case(load, path, {**options, **extra})
                slowest = max(slowest, (time.perf_counter() - t0, path.name))
                counts[f"{name}/{kind}"][outcome] += 1
                if outcome == "rejected_clearly":
                    examples.setdefault(f"{name}/{kind}", detail.replace(str(cases), "…")[:150])
                if outcome == "bad":
                    bad.append(f"{path.name}: {detail}")
                path.unlink()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old_handler)
    seconds = time.perf_counter() - t_start
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before

    table = {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}
    totals = sum(counts.values(), Counter())
    report = "\n".join(f"  {k:<48} {v}" for k, v in table.items())
    report += f"\n  {'total':<48} {dict(sorted(totals.items()))}"
    report += f"\n  ({seconds:.1f} s; slowest case {slowest[0]:.2f} s, {slowest[1]}; peak RSS +{grew >> 20} MiB)"
    print(f"\nfuzzed files by kind:\n{report}\none refusal of each kind:")
    print("\n".join(f"  {k:<48} {v}" for k, v in sorted(examples.items())))
    assert sum(totals.values()) == N_CASES
    assert not marker.exists(), "a pickle ran code"
    assert not bad, f"{len(bad)} bad failures:\n" + "\n".join(bad[:25]) + f"\nby kind:\n{report}"
    assert grew < 1 << 30, f"peak memory grew by {grew >> 20} MiB\n{report}"
    # the kinds that can never be valid files are all refused
    never_valid = ["empty", "truncated", "header_len_huge", "codes_out_of_range", "n_samples_bad", "pickled_code"]
    for key, outcome in table.items():  # (a JSONL or tar cut at a line or member boundary is still one)
        if key.split("/")[1] in never_valid and key.split("/")[0] not in ("tokens-jsonl", "tokens-shard"):
            assert outcome.get("accepted", 0) == 0, (key, outcome)


# --------------------------------------------------------------------------------------------- the CLI
def test_audiotok_decode_refuses_mutated_token_files_in_one_line(valid, tmp_path, capsys):
    from audiotok.cli import main

    def decode(path: Path) -> tuple[int, str]:
        code = main(["decode", str(path), "-o", str(tmp_path / "out"), "--model", str(valid.codec), "--quiet"])
        return code, capsys.readouterr().err.strip()

    assert decode(valid.tokens) == (0, "")
    assert (tmp_path / "out" / "utt.wav").is_file()
    data = valid.tokens.read_bytes()
    rng = random.Random(SEED)
    mutated = {
        "codes_out_of_range": codes_out_of_range(rng, data),
        "n_samples_huge": _st_meta(lambda rng, m: m.update(n_samples=str(10**12)))(rng, data),
        "codebook_larger": _st_meta(lambda rng, m: m.update(codebook_size="4096"))(rng, data),
        "codebook_smaller": _st_meta(lambda rng, m: m.update(codebook_size="2"))(rng, data),
        "truncated": data[: len(data) // 2],
        "header_len_huge": header_len_huge(rng, data),
        "float_codes": _token_bytes(_codes_of(data)[0].astype(np.float32), _codes_of(data)[1]),
        "empty": b"",
    }
    messages = []
    for kind, body in mutated.items():
        path = tmp_path / f"bad_{kind}{TOKEN_SUFFIX}"
        path.write_bytes(body)
        code, err = decode(path)
        messages.append(f"  {kind:<20} {err}")
        assert code == 2, (kind, err)
        assert f"bad_{kind}" in err and "Traceback" not in err and len(err.splitlines()) == 1, (kind, err)
        assert not (tmp_path / "out" / f"bad_{kind}.wav").exists()
    print("audiotok decode of mutated token files:\n" + "\n".join(messages))
