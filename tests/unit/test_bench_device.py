"""bench/device.py, the one-shot GPU benchmark's driver, in its CPU smoke mode (tiny random models): every benchmark
is in the report with a known status and numbers where it ran, the JSON and markdown are written to both places,
and a benchmark that fails, runs past its cap or finds the budget spent is recorded without stopping the rest."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import device  # noqa: E402
import device_benches  # noqa: E402
import device_core  # noqa: E402


def quick_args(tmp_path: Path, *extra: str):
    return device.parse_args(
        ["--quick", "--device", "cpu", "--inprocess", "--results-dir", str(tmp_path / "results"),
         "--out-dir", str(tmp_path / "out"), *extra]
    )  # fmt: skip


def numbers(row: dict) -> list[float]:
    return [v for v in row.values() if isinstance(v, int | float) and not isinstance(v, bool)]


def test_specs_and_functions_agree():
    assert list(device.SPECS) == list(device_benches.FUNCTIONS)
    assert sum(s.cap_s for s in device.SPECS.values()) <= 450  # every cap spent still fits the 8-minute run


def test_quick_run_reports_every_benchmark(tmp_path):
    results = device.run_all(quick_args(tmp_path))
    assert results["schema"] == device.SCHEMA
    assert list(results["benchmarks"]) == list(device.SPECS)
    for name, bench in results["benchmarks"].items():
        assert bench["status"] in device.STATUSES, name
        if bench["status"] == "ok":
            assert bench["rows"], name
            assert all(numbers(r) for r in bench["rows"]), name
            assert all(not math.isnan(x) for r in bench["rows"] for x in numbers(r)), name
        else:
            assert bench["reason"], name
    # only a peer package that is not installed may be missing here (encodec is not part of make setup)
    assert {n for n, b in results["benchmarks"].items() if b["status"] != "ok"} <= {"codec-encodec"}
    codec = results["benchmarks"]["codec"]["rows"]
    assert {r["mode"] for r in codec} == {"one-by-one loop (peer)", "batched"}
    assert {r["batch"] for r in codec} == set(device_core.QUICK.codec_batches)
    semantic = {r["implementation"]: r for r in results["benchmarks"]["semantic"]["rows"]}
    assert semantic["audiotok"]["same_tokens_as_fp32_peer"] is True
    tts = results["benchmarks"]["tts-full"]["rows"]
    assert [r["concurrency"] for r in tts] == list(device_core.QUICK.tts_concurrency)
    assert all(r["first_chunk_ms_mean"] > 0 and r["rtf_per_stream"] > 0 for r in tts)
    assert {g["goal"] for g in results["goals"]} >= {"semantic tokens identical to s3tokenizer's (fp32)"}
    for folder in ("results", "out"):
        files = sorted(p.name for p in (tmp_path / folder).iterdir())
        stem = f"{results['meta']['date']}-cpu-smoke"
        assert files == [stem + ".json", stem + ".md"]
        assert json.loads((tmp_path / folder / files[0]).read_text())["benchmarks"].keys() == device.SPECS.keys()
        md = (tmp_path / folder / files[1]).read_text()
        assert "**Smoke run**" in md and all(f"### {name}:" in md for name in device.SPECS)


def test_failure_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    def broken(ctx):
        ctx.rec.row(measure="before the failure", value=1.0)
        raise RuntimeError("planted")

    monkeypatch.setitem(device_benches.FUNCTIONS, "env", broken)
    monkeypatch.setitem(device_benches.FUNCTIONS, "train-flow", lambda ctx: ctx.rec.row(x=2.0))
    results = device.run_all(quick_args(tmp_path, "--only", "train-flow"))
    env, flow = results["benchmarks"]["env"], results["benchmarks"]["train-flow"]
    assert env["status"] == "failed" and "planted" in env["reason"] and env["rows"] == [{"measure":
        "before the failure", "value": 1.0}]  # fmt: skip
    assert flow["status"] == "ok" and flow["rows"] == [{"x": 2.0}]
    assert results["meta"]["gpu"] == "cpu"  # no env summary: named after the device asked for


def test_skip_is_recorded(tmp_path, monkeypatch):
    def needs_peer(ctx):
        device_core.require("no_such_peer_package", "the peer")

    monkeypatch.setitem(device_benches.FUNCTIONS, "env", needs_peer)
    monkeypatch.setitem(device_benches.FUNCTIONS, "train-flow", lambda ctx: None)
    bench = device.run_all(quick_args(tmp_path, "--only", "train-flow"))["benchmarks"]["env"]
    assert bench["status"] == "skipped" and "no_such_peer_package" in bench["reason"]


def test_spent_budget_and_cap(tmp_path):
    results = device.run_all(quick_args(tmp_path, "--only", "features", "--budget", "1"))
    assert [b["status"] for b in results["benchmarks"].values()] == ["skipped", "skipped"]
    assert all("budget" in b["reason"] for b in results["benchmarks"].values())
    # a benchmark process that runs past its cap is stopped and recorded as timed out
    res = device.run_subprocess("env", 0.05, "cpu", True, tmp_path)
    assert res["status"] == "timeout" and "cap" in res["reason"]
