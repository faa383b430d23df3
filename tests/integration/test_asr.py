"""ASR adaptation: S2-LoRA and the baselines on openai-whisper (tiny random models), transcription, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import whisper

from asr.adapters import METHODS, Adapter, AdapterConfig, load_adapted, target_names
from audiotok.data.manifest import read_manifest
from audiotok.whisper import new_whisper, save_openai, small_dims, transcribe

ROOT = Path(__file__).resolve().parents[2]
D = 64  # model width of the tiny dims
DIMS = small_dims(80, 2.0, D, 2, 2, n_text_ctx=32)


def tiny(seed: int = 0):
    return new_whisper(DIMS, seed=seed).eval()


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(2, 80, 2 * DIMS.n_audio_ctx, generator=g)
    tokens = torch.tensor([[50258, 50259, 50359, 50363, 400, 500, 600]] * 2)
    return mel, tokens


def matrices(model) -> list[tuple[int, int]]:
    names = target_names(model, AdapterConfig())
    return [(model.get_submodule(n).in_features, model.get_submodule(n).out_features) for n in names]


def test_every_method_counts_its_parameters_by_the_formula():
    shapes = matrices(tiny())
    assert len(shapes) == 2 * 6 + 2 * 10  # encoder: 4 attn + 2 mlp; decoder: + 4 cross-attn
    r = 8
    expected = {
        "s2lora": r * 4 * D + 4 * D * r + r * len(shapes),  # one sliced pair of the largest shapes + lambdas
        "lora": sum(r * (i + o) for i, o in shapes),
        "adalora": sum(12 * (i + o) + 12 for i, o in shapes),  # init_r = 12, plus E (r)
        "full": sum(p.numel() for p in tiny().parameters()),
    }
    model = tiny()
    expected["bitfit"] = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias"))
    for method in METHODS:
        adapter = Adapter(tiny(), AdapterConfig(method=method, rank=r, total_step=10))
        assert adapter.num_trainable() == expected[method], method
        assert adapter.num_base() == expected["full"]
    by_shape = Adapter(tiny(), AdapterConfig(rank=r, sharing="shape"))
    groups = set(shapes)
    assert by_shape.num_trainable() == sum(r * (i + o) for i, o in groups) + r * len(shapes)
    no_ln = Adapter(tiny(), AdapterConfig(method="bitfit", bitfit_layernorm=False))
    assert all("ln" not in n for n in no_ln.trainable())


@pytest.mark.parametrize("method", METHODS)
def test_output_at_init_equals_the_base_and_only_adapters_train(method):
    mel, tokens = batch()
    base = tiny()(mel, tokens)
    model = tiny()
    adapter = Adapter(model, AdapterConfig(method=method, total_step=10))
    assert torch.equal(model(mel, tokens), base)
    names = set(adapter.trainable())
    if method == "s2lora":
        assert names == {"s2lora.A.global", "s2lora.B.global"} | {f"{n}.lam" for n in adapter.targets}
    elif method in ("lora", "adalora"):
        assert names and all("lora_" in n for n in names)
    elif method == "bitfit":
        assert names and all(n.endswith(".bias") for n in names)
        assert not any(n.endswith("attn.key.bias") for n in dict(model.named_parameters()))  # key has no bias
    else:
        assert len(names) == len(list(model.parameters()))


def test_s2lora_gradients_reach_lambda_at_init_and_the_proximal_step_zeroes_small_coefficients():
    mel, tokens = batch()
    model = tiny()
    adapter = Adapter(model, AdapterConfig(rank=4, sparsity="proximal", sparsity_weight=0.5))
    F.cross_entropy(model(mel, tokens).transpose(1, 2), tokens).backward()
    layers = adapter.s2lora_layers()
    assert all(m.lam.grad.abs().sum() > 0 for m in layers.values())
    first = next(iter(layers.values()))
    with torch.no_grad():
        first.lam.copy_(torch.tensor([0.004, -0.003, 0.5, -0.25]))
    adapter.after_step(step=0, lr=0.01)  # threshold 0.005
    assert torch.allclose(first.lam, torch.tensor([0.0, 0.0, 0.495, -0.245]))
    assert adapter.ranks()[next(iter(layers))] == 2
    l1 = Adapter(tiny(), AdapterConfig(rank=4, sparsity="l1", sparsity_weight=0.1))
    with torch.no_grad():
        next(iter(l1.s2lora_layers().values())).lam.fill_(1.0)
    assert float(l1.regularizer().detach()) == pytest.approx(0.1 * 4)


@pytest.mark.parametrize("method", ["s2lora", "lora", "adalora"])
def test_a_few_steps_on_one_batch_lower_the_loss(method):
    mel, tokens = batch()
    model = tiny()
    model.train()
    adapter = Adapter(model, AdapterConfig(method=method, total_step=20, delta_t=1, sparsity_weight=1e-3))
    opt = torch.optim.AdamW(adapter.param_groups(0.0), lr=1e-2)
    losses = []
    for step in range(20):
        ce = F.cross_entropy(model(mel, tokens[:, :-1]).transpose(1, 2), tokens[:, 1:])
        losses.append(float(ce.detach()))
        opt.zero_grad()
        (ce + adapter.regularizer()).backward()
        opt.step()
        adapter.after_step(step, 1e-2)
    assert losses[-1] < 0.97 * losses[0] and losses[-1] < min(losses[:5]), losses


def _train_a_little(adapter: Adapter, steps: int = 3) -> None:
    mel, tokens = batch(1)
    opt = torch.optim.AdamW(adapter.param_groups(0.0), lr=5e-2)
    for step in range(steps):
        loss = F.cross_entropy(adapter.model(mel, tokens).transpose(1, 2), tokens) + adapter.regularizer()
        opt.zero_grad()
        loss.backward()
        opt.step()
        adapter.after_step(step, 5e-2)


@pytest.mark.parametrize("method", METHODS)
def test_merge_matches_the_adapted_model_and_exports_for_whisper_load_model(method, tmp_path):
    mel, tokens = batch()
    model = tiny()
    adapter = Adapter(model, AdapterConfig(method=method, total_step=10, delta_t=1, sparsity_weight=1e-4))
    _train_a_little(adapter)
    model.eval()
    adapted = model(mel, tokens)
    assert not torch.allclose(adapted, tiny()(mel, tokens), atol=1e-4)  # training changed something
    adapter.save(tmp_path / "a.safetensors")
    merged = adapter.merge()
    assert (merged(mel, tokens) - adapted).abs().max() < 1e-4
    assert set(merged.state_dict()) == set(tiny().state_dict())
    save_openai(merged, tmp_path / "merged.pt")
    loaded = whisper.load_model(str(tmp_path / "merged.pt"), device="cpu")
    assert (loaded(mel, tokens) - adapted).abs().max() < 1e-4
    # the small adapter file rebuilds the same model on a fresh base
    again = load_adapted(_base_file(tmp_path), tmp_path / "a.safetensors")
    assert (again(mel, tokens) - adapted).abs().max() < 1e-4


def _base_file(tmp_path: Path) -> Path:
    return save_openai(tiny(), tmp_path / "base.pt")


def test_adapter_refuses_a_base_of_other_dims(tmp_path):
    from audiotok.checkpoint import CheckpointError

    adapter = Adapter(tiny(), AdapterConfig())
    adapter.save(tmp_path / "a.safetensors")
    other = new_whisper(small_dims(80, 2.0, 32, 2, 2, n_text_ctx=32))
    with pytest.raises(CheckpointError, match="dims"):
        Adapter.load(other, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="unknown adapter method"):
        AdapterConfig(method="prefix")


@pytest.mark.parametrize("method", ["s2lora", "lora"])
def test_decoding_with_kv_cache_and_beam_runs_through_adapters(method):
    mel, _ = batch()
    model = tiny()
    adapter = Adapter(model, AdapterConfig(method=method))
    _train_a_little(adapter)
    model.eval()
    greedy, beam = transcribe(model, mel), transcribe(model, mel, beam_size=3)
    merged = adapter.merge()  # the plain model with the same function: the reference
    assert greedy == transcribe(merged, mel)
    assert beam == transcribe(merged, mel, beam_size=3)


def test_transcribe_cli_with_an_adapter(tmp_path, wav_tree):
    from audiotok.cli import main

    model = tiny()
    base = save_openai(model, tmp_path / "base.pt")
    adapter = Adapter(model, AdapterConfig())
    _train_a_little(adapter)
    adapter.save(tmp_path / "a.safetensors")
    files = sorted(str(p) for p in wav_tree.rglob("*.wav"))
    out = tmp_path / "t.jsonl"
    rc = main(
        ["transcribe", *files, "--model", str(base), "--adapter", str(tmp_path / "a.safetensors")]
        + ["--batch-size", "2", "--out", str(out), "--quiet"]
    )
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["audio"] for r in rows] == files and all(isinstance(r["text"], str) for r in rows)


def test_long_audio_is_transcribed_in_context_windows():
    from audiotok.whisper.decode import _windows

    x = torch.arange(10)
    assert [len(w) for w in _windows(x, 4)] == [4, 4, 2]
    assert torch.equal(torch.cat(_windows(x, 4)), x)


@pytest.fixture(scope="module")
def child_corpus(tmp_path_factory) -> Path:
    from audiotok.data.synth import CorpusConfig, build_corpus

    out = tmp_path_factory.mktemp("child")
    build_corpus(CorpusConfig(out_dir=str(out), minutes=1.5, n_espeak=3, seed=0, domain="child"), progress=False)
    return out


@pytest.mark.parametrize("unit", ["bpe", "char"])
def test_adapt_recipe_runs_two_steps_and_resumes(child_corpus, tmp_path, unit):
    from audiotok.whisper import char_training_vocab, tokenizer_for, zero_rows_outside
    from recipes.asr_s2lora.adapt import main

    model = new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=64), seed=0)
    if unit == "char":  # as our recipe trains it: the loss then runs on its 77 logits only
        model.text_unit = "char"
        zero_rows_outside(model, char_training_vocab(tokenizer_for(model)))
    base = save_openai(model, tmp_path / "base.pt")
    out = tmp_path / "run"
    args = [
        f"base={base}",
        f"data.train={child_corpus / 'train.jsonl'}",
        f"data.valid={child_corpus / 'valid.jsonl'}",
        "data.batch_seconds=8.0",
        "data.n_workers=0",
        "data.n_valid=2",
        f"out_dir={out}",
        "loop.warmup_steps=1",
        "loop.log_every=1",
        "loop.save_every=2",
        "select_on=cer",
    ]
    main([*args, "loop.max_steps=2", "loop.valid_every=2"])
    assert (out / "adapter.safetensors").exists() and (out / "best" / "adapter.safetensors").exists()
    main([*args, "loop.max_steps=4", "loop.valid_every=100"])
    steps = [json.loads(line)["step"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    chosen = json.loads((out / "best" / "metrics.json").read_text())
    assert chosen["step"] == 2 and 0 <= chosen["cer"] <= chosen["wer"] + 10


def test_experiment_writes_the_comparison_table_and_rank_maps(child_corpus, tmp_path, monkeypatch):
    from recipes.asr_s2lora import experiment
    from recipes.asr_s2lora.experiment import main

    # a short text context: a random model never ends, so every decode runs to the limit (and its beam fallback)
    base = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=24), seed=0), tmp_path / "base.pt")
    out, committed = tmp_path / "exp", tmp_path / "repo-results"
    args = [
        "--config",
        str(ROOT / "recipes/asr_s2lora/configs/tiny.yaml"),
        f"base={base}",
        f"child={child_corpus}",
        "adult_test=null",
        "adapt_engines=[flite]",
        "ood_engines=[festival]",
        f"results_dir={committed}",
        "seeds=[0, 1]",
        "seeded_methods=[lora]",
    ]
    results = main([*args, f"out_dir={out}"])
    assert set(results) == {"zero-shot", *METHODS, "lora-seed1"}
    assert results["s2lora"]["trainable"] < results["lora"]["trainable"] < results["full"]["trainable"]
    table = (out / "results.md").read_text()
    for method in ("zero-shot", *METHODS):
        assert f"| {method} |" in table
    assert "synthetic" in table and "CER" in table and 0 <= results["lora"]["cer_in"] <= 10
    assert "criterion >= 30%" in table.splitlines()[0] and "| reference |" in table
    assert (out / "ranks.png").stat().st_size > 0 and "adalora" in (out / "ranks.md").read_text()

    # one result file per run, the seeded one included, with the per-utterance lists and the set digests
    files = {p.stem for p in committed.glob("*.json")}
    assert files == {"zero-shot", *METHODS, "lora-seed1"}
    seeded = json.loads((committed / "lora-seed1.json").read_text())
    assert (
        seeded["method"] == "lora" and seeded["seed"] == 1 and "seed: 1" in (out / "lora-seed1/config.yaml").read_text()
    )
    test_in = seeded["tests"]["in"]
    assert test_in["n"] == len(test_in["ids"]) == len(test_in["refs"]) == len(test_in["hyps"]) == 2
    assert set(seeded["sets"]) == {"adapt", "valid", "test_in", "test_ood"}
    assert seeded["sets"]["test_in"]["n"] == seeded["sets"]["valid"]["n"] == 2 and "ranks" in json.loads(
        (committed / "s2lora.json").read_text()
    )
    row = next(line for line in table.splitlines() if line.startswith("| lora |"))
    assert row.count("(2)") == 2  # in-domain and out-of-domain WER: mean ± std over 2 seeds

    # a new machine (empty out_dir) with the committed results: nothing is trained, decoded or rewritten
    def boom(*a, **k):
        raise AssertionError("a finished run was redone")

    monkeypatch.setattr(experiment, "train", boom)
    monkeypatch.setattr(experiment, "load_whisper", boom)
    monkeypatch.setattr(experiment, "load_adapted", boom)
    mtimes = {p.name: p.stat().st_mtime_ns for p in committed.glob("*.json")}
    assert main([*args, f"out_dir={tmp_path / 'session2'}"]) == results
    assert {p.name: p.stat().st_mtime_ns for p in committed.glob("*.json")} == mtimes
    mtime = (out / "results.json").stat().st_mtime_ns
    main([*args, f"out_dir={out}"])  # the same machine: nothing to do, nothing rewritten
    assert (out / "results.json").stat().st_mtime_ns == mtime

    # the report from the result files alone: no corpus, no model
    (committed / "results.md").unlink()
    report = [*args, f"out_dir={tmp_path / 'report'}", f"child={tmp_path / 'absent'}", "report=true"]
    assert main(report) == results
    assert (committed / "results.md").read_text() == table == (tmp_path / "report/results.md").read_text()

    # a different slice of the corpus is refused, naming the set
    with pytest.raises(ValueError, match="another adapt set .* new folder"):
        main([*args, f"out_dir={tmp_path / 'other'}", "n_adapt=1"])
    with pytest.raises(ValueError, match="n_adapt=100000 but .* holds only"):
        main([*args, f"out_dir={tmp_path / 'other'}", "n_adapt=100000"])


def test_adapt_recipe_under_ddp_with_shared_s2lora_factors(child_corpus, tmp_path):
    from tests.conftest import run_two_cpu_ranks

    base = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=64), seed=0), tmp_path / "base.pt")
    out = tmp_path / "ddp"
    args = [
        str(ROOT / "recipes/asr_s2lora/adapt.py"),
        f"base={base}",
        f"data.train={child_corpus / 'train.jsonl'}",
        f"data.valid={child_corpus / 'valid.jsonl'}",
        "data.batch_seconds=8.0",
        "data.n_workers=0",
        f"out_dir={out}",
        "loop.max_steps=2",
        "loop.warmup_steps=1",
        "loop.save_every=2",
        "loop.valid_every=100",
        "device=cpu",
    ]
    res = run_two_cpu_ranks(args, port=29541)
    assert res.returncode == 0, res.stderr[-3000:]
    adapted = Adapter.load(
        new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=64), seed=0), out / "adapter.safetensors"
    )
    assert any(float(m.lam.detach().abs().sum()) > 0 for m in adapted.s2lora_layers().values())


def test_domain_search_scores_transforms_and_materializes_one(child_corpus, tmp_path):
    from audiotok.audio import load
    from recipes.asr_s2lora.domains import Transform, main, perturb_fn

    wav = torch.randn(16000)
    fast = perturb_fn(Transform(speed=1.25), 0)(wav, 0)
    assert abs(fast.shape[-1] - 12800) <= 2  # 1 / 1.25 as long
    noisy = perturb_fn(Transform(snr_db=0.0), 0)
    assert torch.equal(noisy(wav, 3), noisy(wav, 3)) and not torch.equal(noisy(wav, 3), noisy(wav, 4))
    snr = 10 * torch.log10(wav.pow(2).sum() / (noisy(wav, 3) - wav).pow(2).sum())
    assert abs(float(snr)) < 0.1
    base = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=24), seed=0), tmp_path / "base.pt")
    out = tmp_path / "domains"
    config = tmp_path / "domains.yaml"
    config.write_text("transforms: {fast: {speed: 1.3}, phone: {band_hz: [300.0, 3400.0]}}\n")
    args = ["--config", str(config), f"source={child_corpus}", f"models=[{base}]", "n_eval=2", f"out_dir={out}"]
    args += ["batch_size=2"]
    results = main(args)
    assert set(results) == {f"{base} | {d}" for d in ("clean (source)", "fast", "phone")}
    assert all(r["n"] == 2 and r["wer"] >= 0 for r in results.values())
    assert "| phone |" in (out / "results.md").read_text()
    root = Path(main([*args, "materialize=fast"])["corpus"])
    src = [u for u in read_manifest(child_corpus / "valid.jsonl") if u.text]
    made = read_manifest(root / "valid.jsonl")
    assert len(made) == len(src) and made[0].text == src[0].text and made[0].sample_rate == 16000
    assert abs(made[0].duration - src[0].duration / 1.3) < 0.01
    assert load(made[0].audio)[0].shape[-1] == round(made[0].duration * 16000)
