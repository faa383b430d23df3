"""The TTS LM: layout, causality, sampling, generation limits, HF round trip (tiny random models)."""

from __future__ import annotations

import pytest
import torch

from tts.lm import IGNORE, TTSLM, Example, lm_config
from tts.sampling import SamplingConfig, nucleus, sample_next
from tts.tokenizer import TTSTokenizer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine.",
    "It costs 25 dollars and 3 cents.",
    "She sells sea shells by the sea shore.",
] * 20


@pytest.fixture(scope="module")
def tok() -> TTSTokenizer:
    return TTSTokenizer.build(SENTENCES, n_speech=64, text_vocab_size=300)


@pytest.fixture(scope="module")
def lm(tok) -> TTSLM:
    torch.manual_seed(0)
    return TTSLM(lm_config("tiny"), tok).eval()


def test_vocabulary_layout_and_text_front_end(tok):
    v = tok.vocab
    assert v.size == len(tok.hf) == v.text_size + 5 + 64
    assert tok.hf.convert_ids_to_tokens([v.audio_bos, v.audio_eos, v.speech_offset]) == [
        "<|audio_bos|>",
        "<|audio_eos|>",
        "<|s_0|>",
    ]
    assert tok.hf.decode(tok.encode_text("It costs 25 dollars.")).strip() == "It costs twenty five dollars."
    assert tok.codes(tok.speech_ids([3, 63, 0])) == [3, 63, 0]


def test_loss_is_only_on_target_speech_and_end(lm, tok):
    ex = Example(tok.encode_text("A stitch in time."), prompt_codes=[1, 2, 3], target_codes=[4, 5])
    ids, labels = lm.sequence(ex)
    v = tok.vocab
    assert ids[len(ex.text)] == v.audio_bos and ids[-1] == v.audio_eos
    targets = [x for x in labels if x != IGNORE]
    assert targets == [v.speech_offset + 4, v.speech_offset + 5, v.audio_eos]
    # each label is the next input token
    for i, lab in enumerate(labels):
        if lab != IGNORE:
            assert ids[i + 1] == lab
    batch = lm.collate([ex, Example(tok.encode_text("Nine."), target_codes=[7])])
    loss, logs = lm.loss(batch)
    assert torch.isfinite(loss) and 0 <= float(logs["acc"]) <= 1
    assert int((batch["labels"] != IGNORE).sum()) == 3 + 2


def test_causality(lm, tok):
    ids = torch.tensor([tok.encode_text("She sells sea shells.") + [tok.vocab.audio_bos, 100, 101, 102]])
    changed = ids.clone()
    changed[0, -1] = 110
    a, b = lm.model(input_ids=ids).logits, lm.model(input_ids=changed).logits
    assert torch.allclose(a[0, :-1], b[0, :-1], atol=1e-5)
    assert not torch.allclose(a[0, -1], b[0, -1])


def test_nucleus_and_ras_on_crafted_distributions():
    logits = torch.log(torch.tensor([0.5] + [0.05] * 10))
    keep = nucleus(logits, top_p=0.78, top_k=25)
    assert torch.isfinite(keep).sum() == 7  # 0.5 + 5 x 0.05 = 0.75 < 0.78: the 7th token crosses it
    assert torch.isfinite(nucleus(logits, top_p=0.99, top_k=3)).sum() == 3
    cfg = SamplingConfig(top_k=1)
    g = torch.Generator().manual_seed(0)
    assert all(sample_next(logits, [], cfg, g) == 0 for _ in range(50))  # no repetition: the nucleus
    redrawn = [sample_next(logits, [0], cfg, g) for _ in range(400)]  # 0 just came: re-draw from everything
    assert 0.4 < redrawn.count(0) / 400 < 0.6
    plain = SamplingConfig(method="topk", top_k=1)
    assert all(sample_next(logits, [0] * 10, plain, g) == 0 for _ in range(50))


class _Biased(torch.nn.Module):
    """Wraps a model and adds a fixed bias to its logits (to force EOS or a loop)."""

    def __init__(self, model, bias: torch.Tensor):
        super().__init__()
        self.inner, self.bias = model, bias

    def forward(self, **kw):
        out = self.inner(**kw)
        out.logits = out.logits + self.bias
        return out


def test_end_token_is_masked_before_the_minimum_and_lengths_are_bounded(lm, tok):
    v = tok.vocab
    text = tok.encode_text("A stitch in time saves nine.")
    original = lm.model
    try:
        bias = torch.zeros(v.size)
        bias[v.audio_eos] = 50.0  # the model wants to stop at once
        lm.model = _Biased(original, bias)
        out = lm.generate([text], sampling=SamplingConfig(min_ratio=2.0, max_ratio=20.0))[0]
        assert len(out) == 2 * len(text)
        bias = torch.zeros(v.size)
        bias[v.speech_offset + 7] = 50.0  # the model loops on one token
        lm.model = _Biased(original, bias)
        looped = lm.generate([text], sampling=SamplingConfig(method="topk", max_run=30))[0]
        assert looped == [7] * 30
        capped = lm.generate([text], sampling=SamplingConfig(method="topk", max_run=0, max_ratio=3.0))[0]
        assert len(capped) == 3 * len(text)
    finally:
        lm.model = original


def test_generation_is_seeded_and_batch_equals_one_by_one(lm, tok):
    texts = [tok.encode_text(s) for s in ("Nine.", "The quick brown fox jumps.", "She sells sea shells.")]
    sampling = SamplingConfig(min_ratio=1.0, max_ratio=3.0)
    batch = lm.generate(texts, prompt_codes=[[1, 2], [], [3]], sampling=sampling, seed=5)
    single = [
        lm.generate([t], prompt_codes=[p], sampling=sampling, seed=5 + i)[0]
        for i, (t, p) in enumerate(zip(texts, [[1, 2], [], [3]], strict=True))
    ]
    assert batch == single
    assert batch == lm.generate(texts, prompt_codes=[[1, 2], [], [3]], sampling=sampling, seed=5)
    assert all(0 <= c < 64 for out in batch for c in out)
    for out, t in zip(batch, texts, strict=True):
        assert len(t) <= len(out) <= 3 * len(t)


def test_saves_as_a_standard_hf_model_directory(lm, tok, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = lm.save_pretrained(tmp_path / "lm")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    hf = AutoModelForCausalLM.from_pretrained(str(folder))
    hf_tok = AutoTokenizer.from_pretrained(str(folder))
    ids = torch.tensor([tok.encode_text("Nine.") + [tok.vocab.audio_bos, tok.vocab.speech_offset + 5]])
    assert torch.allclose(hf(input_ids=ids).logits, lm.model(input_ids=ids).logits, atol=1e-5)
    assert hf_tok.convert_tokens_to_ids("<|s_5|>") == tok.vocab.speech_offset + 5
    again = TTSLM.from_pretrained(folder)
    assert again.generate([ids[0, :-2].tolist()], seed=1) == lm.generate([ids[0, :-2].tolist()], seed=1)


def test_configs_saved_with_the_old_tokenizer_key_still_load(lm, tmp_path):
    import json

    from tts.lm import CONFIG_FILE

    folder = lm.save_pretrained(tmp_path / "lm")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    assert meta["config"]["semantic_tokenizer"] == "semantic"  # the audio tokenizer; lm.tokenizer is the text one
    meta["config"]["tokenizer"] = meta["config"].pop("semantic_tokenizer")  # as older LMs (the bundled one) saved it
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    again = TTSLM.from_pretrained(folder)
    assert again.config == lm.config and again.config.semantic_tokenizer == "semantic"


@pytest.fixture(scope="module")
def semantic_file(tmp_path_factory):
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    torch.manual_seed(0)
    cfg = SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32, quantize_after=1)
    path = tmp_path_factory.mktemp("sem") / "semantic.safetensors"
    SupervisedTokenizerASR(cfg).export_tokenizer().save(path)
    return path


def _lm_args(tiny_corpus, semantic_file, out):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return [
        "--config",
        str(root / "recipes/tts/configs/lm-tiny.yaml"),
        f"data.train={tiny_corpus / 'train.jsonl'}",
        f"data.valid={tiny_corpus / 'valid.jsonl'}",
        f"semantic_tokenizer={semantic_file}",
        f"out_dir={out}",
    ]


def test_lm_recipe_runs_two_steps_resumes_and_saves_an_hf_directory(tiny_corpus, semantic_file, tmp_path):
    import json

    from recipes.tts.train_lm import main

    out = tmp_path / "run"
    main([*_lm_args(tiny_corpus, semantic_file, out), "loop.max_steps=2"])
    assert (out / "lm" / "config.json").exists() and (out / "tokens-train.jsonl").exists()
    main([*_lm_args(tiny_corpus, semantic_file, out), "loop.max_steps=4"])
    steps = [json.loads(line)["step"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((out / "valid.jsonl").read_text().splitlines()[0])["loss"] > 0
    lm = TTSLM.from_pretrained(out / "lm")
    assert lm.config.semantic_tokenizer == str(semantic_file)  # the LM's config names the tokenizer it speaks
    codes = lm.generate([lm.tokenizer.encode_text("Nine.")], sampling=SamplingConfig(max_ratio=3.0))[0]
    assert all(0 <= c < 6561 for c in codes)
    # fine-tuning a trained LM (init_tts): starts from its weights, keeps its tokenizer and architecture
    tuned = tmp_path / "tuned"
    main(
        [
            *_lm_args(tiny_corpus, semantic_file, tuned),
            "loop.max_steps=1",
            f"init_tts={out / 'lm'}",
            "model.num_layers=1",
        ]
    )
    again = TTSLM.from_pretrained(tuned / "lm")
    assert again.config.num_layers == lm.config.num_layers and again.vocab == lm.vocab
    assert (tuned / "tokenizer" / "tokenizer.json").read_text() == (out / "tokenizer" / "tokenizer.json").read_text()
    moved = [not torch.equal(a, b) for a, b in zip(again.model.parameters(), lm.model.parameters(), strict=True)]
    assert any(moved)  # trained one step: moved, but only a little from where it started (not a new model)
    assert max((a - b).abs().max() for a, b in zip(again.model.parameters(), lm.model.parameters(), strict=True)) < 0.1


def test_lm_recipe_reads_tokens_precomputed_with_audiotok_encode(tiny_corpus, semantic_file, tmp_path):
    from audiotok.cli import main as cli
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
    from recipes.tts.train_lm import main
    from tts.data import read_tokens

    shards, jsonl = tmp_path / "shards", tmp_path / "valid-tokens.jsonl"
    for manifest, out, fmt in (
        (tiny_corpus / "train.jsonl", shards, "shards"),
        (tiny_corpus / "valid.jsonl", jsonl, "jsonl"),
    ):
        assert (
            cli(["encode", str(manifest), "--model", str(semantic_file), "--format", fmt, "-o", str(out), "--quiet"])
            == 0
        )
    args = _lm_args(tiny_corpus, semantic_file, tmp_path / "pre")
    main([*args, f"data.train_tokens={shards}", f"data.valid_tokens={jsonl}", "loop.max_steps=1"])
    main([*_lm_args(tiny_corpus, semantic_file, tmp_path / "own"), "loop.max_steps=1"])  # tokenized by the recipe
    for split in ("train", "valid"):
        pre, own = (read_tokens(tmp_path / run / f"tokens-{split}.jsonl") for run in ("pre", "own"))
        assert pre == own and pre  # the same rows in the same (manifest) order
    # the text check reads the trained LM with each utterance's own and another's text: different inputs, losses
    from recipes.tts.lm_text_check import main as text_check

    check = text_check([str(tmp_path / "pre" / "lm"), str(tmp_path / "pre" / "tokens-train.jsonl"), "-n", "4"])
    assert check["utterances"] == 4 and check["own_text"]["loss"] != check["other_text"]["loss"]
    # tokens of another tokenizer than the one the TTS will read prompts with: refused
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    SupervisedTokenizerASR(SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32,
                                            quantize_after=1)).export_tokenizer().save(other)  # fmt: skip
    with pytest.raises(ValueError, match="not by"):
        main([*_lm_args(tiny_corpus, other, tmp_path / "bad"), f"data.train_tokens={shards}", "loop.max_steps=1"])


def test_token_cache_lines_are_the_projects_token_lines_and_old_caches_are_refused(
    tiny_corpus, semantic_file, tmp_path
):
    import json

    from audiotok.registry import load_tokenizer
    from audiotok.tokens import TOKEN_FORMAT_VERSION, TokenFileError, iter_token_inputs
    from tts.data import TokenSplits, cache_tokens, extract_tokens, read_tokens

    semantic, name = load_tokenizer(str(semantic_file))
    out = extract_tokens(tiny_corpus / "valid.jsonl", semantic, tmp_path / "tokens.jsonl", progress=False, name=name)
    rows = read_tokens(out)
    assert rows and all(r["format_version"] == TOKEN_FORMAT_VERSION and r["tokenizer"] == name for r in rows)
    assert {"speaker", "text", "audio", "start", "end"} <= set(rows[0])
    records = dict(iter_token_inputs([str(out)]))  # what `audiotok decode` reads, too
    assert [list(records[r["id"]].codes) for r in rows] == [r["codes"] for r in rows]
    assert extract_tokens(tiny_corpus / "valid.jsonl", semantic, out, progress=False, name=name).read_text() == (
        out.read_text()
    )  # resumed: nothing to add
    # a cache of the old, unversioned rows: refused with what to do
    old = tmp_path / "old"
    old.mkdir()
    keep = ("id", "speaker", "text", "audio", "start", "end", "codes")
    (old / "tokens-valid.jsonl").write_text("".join(json.dumps({k: r[k] for k in keep}) + "\n" for r in rows))
    with pytest.raises(TokenFileError, match="Delete the cache"):
        read_tokens(old / "tokens-valid.jsonl")
    (old / "tokens.json").write_text(json.dumps({"frame_rate": 25.0, "codebook_size": 6561}))
    with pytest.raises(TokenFileError, match="Delete the cache"):
        cache_tokens(
            str(semantic_file),
            TokenSplits(str(tiny_corpus / "train.jsonl"), str(tiny_corpus / "valid.jsonl")),
            old,
            6561,
        )


def test_lm_recipe_under_two_process_ddp(tiny_corpus, semantic_file, tmp_path):
    from pathlib import Path

    from tests.conftest import run_two_cpu_ranks

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "ddp"
    args = [str(root / "recipes/tts/train_lm.py"), *_lm_args(tiny_corpus, semantic_file, out), "loop.max_steps=2"]
    args.append("data.pack_tokens=256")  # packed rows under DDP
    res = run_two_cpu_ranks([*args, "device=cpu"], port=29557)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "lm" / "model.safetensors").exists()


def test_lm_recipe_under_two_process_fsdp_saves_full_weights_and_resumes(tiny_corpus, semantic_file, tmp_path):
    from pathlib import Path

    from audiotok.train.state import load_training_state
    from tests.conftest import run_two_cpu_ranks

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "fsdp"
    args = [str(root / "recipes/tts/train_lm.py"), *_lm_args(tiny_corpus, semantic_file, out), "fsdp=true"]
    res = run_two_cpu_ranks([*args, "loop.max_steps=2", "loop.valid_every=2", "device=cpu"], port=29561)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "sharded over 2 ranks" in res.stdout
    lm = TTSLM.from_pretrained(out / "lm")  # full (unsharded) weights in the HF directory
    state = load_training_state(out / "last.pt")
    assert state["step"] == 2 and set(state["model"]) == {f"model.{k}" for k in lm.model.state_dict()}
    for k, v in lm.model.state_dict().items():
        assert torch.equal(state["model"][f"model.{k}"].to(v.dtype), v), k
    res = run_two_cpu_ranks([*args, "loop.max_steps=3", "device=cpu"], port=29562)  # resumes from full state
    assert res.returncode == 0, res.stderr[-3000:]
    assert load_training_state(out / "last.pt")["step"] == 3


def test_bistream_layout_interleaves_text_and_speech(tok):
    from dataclasses import replace

    lm = TTSLM(replace(lm_config("tiny"), layout="bistream", bistream_ratio=(2, 3)), tok)
    v = tok.vocab
    t = [10, 11, 12, 13, 14]
    s = [v.speech_offset + c for c in range(7)]
    ids, labels = lm.sequence(Example(t, [], list(range(7))))
    assert ids == [10, 11, *s[:3], 12, 13, *s[3:6], 14, v.audio_bos, s[6], v.audio_eos]
    expected = [IGNORE, s[0], s[1], s[2], v.fill, IGNORE, s[3], s[4], s[5], v.fill, IGNORE, s[6], v.audio_eos, IGNORE]
    assert labels == expected
    # prompt speech is context, never a label
    ids, labels = lm.sequence(Example(t, [0, 1], list(range(2, 7))))
    assert labels[1] == labels[2] == IGNORE and labels[3] == s[2] and labels[4] == v.fill
    loss, _ = lm.loss(lm.collate([Example(t, [], list(range(7))), Example(t[:2], [], [1, 2])]))
    assert torch.isfinite(loss)


def test_bistream_generation_does_not_depend_on_how_the_text_is_chunked(tok):
    from dataclasses import replace

    torch.manual_seed(0)
    lm = TTSLM(replace(lm_config("tiny"), layout="bistream", bistream_ratio=(2, 3)), tok).eval()
    text = tok.encode_text("The quick brown fox jumps over the lazy dog.")
    sampling = SamplingConfig(min_ratio=1.0, max_ratio=4.0)
    whole = lm.generate_bistream([text], sampling=sampling, seed=4)
    pieces = lm.generate_bistream(([x] for x in text), sampling=sampling, seed=4)
    assert whole == pieces and len(whole) >= len(text)
    assert all(0 <= c < 64 for c in whole)
    prompted = lm.generate_bistream([text], prompt_codes=[5, 6, 7, 8], sampling=sampling, seed=4)
    assert prompted[:4] == [5, 6, 7, 8]


def test_start_from_a_local_pretrained_llm_directory(tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from tts.tokenizer import train_text_bpe

    # a stand-in "pretrained LLM": a tiny Qwen2 with its own tokenizer, saved as a local directory
    base_tok = PreTrainedTokenizerFast(tokenizer_object=train_text_bpe(SENTENCES, 300), eos_token="<|endoftext|>")
    base_tok.add_special_tokens({"eos_token": "<|endoftext|>"})
    llm = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(base_tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    llm.save_pretrained(tmp_path / "llm")
    base_tok.save_pretrained(tmp_path / "llm")
    lm = TTSLM.from_llm(tmp_path / "llm", lm_config("tiny")).eval()
    assert lm.vocab.text_size == len(base_tok) and lm.model.get_input_embeddings().num_embeddings == lm.vocab.size
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path / "llm"))  # the LLM's own ids are kept
    assert lm.tokenizer.encode_text("A stitch in time.") == reloaded.encode(
        "A stitch in time.", add_special_tokens=False
    )
    assert lm.config.hidden_size == 32 and lm.config.extra["init_from"] == str(tmp_path / "llm")
    codes = lm.generate([lm.tokenizer.encode_text("Nine.")], sampling=SamplingConfig(max_ratio=3.0))[0]
    assert all(0 <= c < 64 for c in codes)
    again = TTSLM.from_pretrained(lm.save_pretrained(tmp_path / "tts-lm"))
    assert again.generate([lm.tokenizer.encode_text("Nine.")], sampling=SamplingConfig(max_ratio=3.0))[0] == codes


def test_vectorised_sampling_equals_row_by_row():
    from tts.sampling import sample_batch

    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    hist = [[1, 2], [], [3] * 5, [int(logits[3].argmax())]]
    cfg = SamplingConfig()
    batch = sample_batch(logits, hist, cfg, [torch.Generator().manual_seed(10 + i) for i in range(4)])
    rows = [sample_next(logits[i], hist[i], cfg, torch.Generator().manual_seed(10 + i)) for i in range(4)]
    assert batch == rows


def test_packed_rows_compute_exactly_what_each_sequence_computes_alone(lm, tok):
    lm.eval()
    examples = [
        Example(tok.encode_text("One two three."), [4, 5], [1, 2, 3, 4, 5]),
        Example(tok.encode_text("Hi."), [], [6, 7]),
        Example(tok.encode_text("A longer sentence than the others, by far."), [1], list(range(12))),
        Example(tok.encode_text("Yes."), [2, 3], [8]),
    ]
    lengths = [len(lm.sequence(e)[0]) for e in examples]
    packed = lm.collate(examples, pack_tokens=max(lengths) + 8)
    assert packed["input_ids"].shape[0] < len(examples)  # some rows hold several sequences
    assert int((packed["labels"] != -100).sum()) == sum(len(e.target_codes) + 1 for e in examples)
    with torch.no_grad():
        logits = lm.model(**{k: packed[k] for k in ("input_ids", "attention_mask", "position_ids")}).logits
        for e in examples:
            ids, _ = lm.sequence(e)
            alone = lm.model(input_ids=torch.tensor([ids])).logits[0]
            # find the sequence in the packed rows by its ids and first position
            r, start = next(
                (r, s)
                for r in range(packed["input_ids"].shape[0])
                for s in range(packed["input_ids"].shape[1] - len(ids) + 1)
                if packed["position_ids"][r, s] == 0 and packed["input_ids"][r, s : s + len(ids)].tolist() == ids
            )
            torch.testing.assert_close(logits[r, start : start + len(ids)], alone, atol=1e-4, rtol=1e-4)
        padded_loss, _ = lm.loss(lm.collate(examples))
        packed_loss, _ = lm.loss(packed)
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=1e-5)
