"""Every speed figure from one GPU run (issue 27, part 2): the driver that ``bench/device.sh`` calls.

Runs each benchmark of ``bench/device_benches.py`` (the table of them; they live by family in the other
``bench/device_*.py`` modules) in its own process under a time cap (a benchmark that fails, is skipped or runs
past its cap is recorded as such, with the rows it finished, and the run goes on), keeps the whole run inside
``--budget`` seconds, and writes ``<date>-<gpu>.json`` and ``.md`` to ``--results-dir`` (default
``bench/results``) and to ``--out-dir`` (default ``$OUT`` when set), rewritten after every benchmark.

    python bench/device.py                      # the GPU run (bash bench/device.sh sets up, then calls this)
    python bench/device.py --quick --device cpu # the smoke run: tiny models on a CPU, same code paths
    python bench/device.py --only codec semantic --budget 200

This module imports only the standard library, so it reports even where ``import torch`` fails.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SCHEMA = "audiotok-device-bench/1"
STATUSES = ("ok", "skipped", "failed", "timeout")
MIN_START_S = 8.0  # a benchmark is not started with less of the budget left than this
SMOKE_DIR = BENCH_DIR / "build" / "smoke-results"  # git-ignored (build/)


@dataclass(frozen=True)
class Spec:
    """What the report says of a benchmark: its title, its peer and its time caps (GPU run, smoke run)."""

    title: str
    peer: str
    cap_s: int
    quick_cap_s: int = 90


# the order they run in; the functions are device_benches.FUNCTIONS (the test checks the two agree)
SPECS: dict[str, Spec] = {
    "env": Spec("machine, software, copy bandwidth, matmul rate", "-", 25),
    "codec": Spec("codec batched encode/decode, 10 s clips, fp32 / TF32", "the one-by-one loop, same weights", 70),
    "codec-encodec": Spec("EnCodec 24 kHz 1.5 kbps on the same clips", "our codec (the codec rows)", 40),
    "semantic": Spec("semantic tokens/s, B=32, mixed 2-15 s", "the s3tokenizer package's batch path", 50),
    "features": Spec("Whisper log-mel and CosyVoice 2 mel on the device", "librosa per file; the bandwidth bound", 35),
    "tts-bundled": Spec("TTS.stream of the bundled default", "the goals: first chunk 150 ms, RTF 0.05", 40),
    "tts-full": Spec("TTS.stream at full size, random weights", "the goals: first chunk 150 ms, RTF 0.05", 70),
    "train-codec": Spec("codec GAN training step, full size", "- (for planning)", 40),
    "train-semantic": Spec("semantic tokenizer training step, Whisper-base size", "- (for planning)", 25),
    "train-lm": Spec("TTS LM training step, Qwen2.5-0.5B shape", "- (for planning)", 30),
    "train-flow": Spec("TTS flow training step, CosyVoice 2 estimator size", "- (for planning)", 25),
}


# ------------------------------------------------------------------------------------------------------ running
def child_command(name: str, part: Path, device: str, quick: bool) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--part", str(part), "--device", device]
    return cmd + (["--quick"] if quick else [])


def read_part(part: Path, name: str) -> dict:
    """What a benchmark process wrote (its rows so far), or an empty record."""
    try:
        return json.loads(part.read_text())
    except (OSError, ValueError):
        return {"name": name, "status": "running", "reason": None, "rows": [], "summary": {}, "notes": []}


def log_tail(log: Path, lines: int = 12) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


_children: set[int] = set()  # process groups of running benchmark processes (ended if this driver is stopped)


def stop_children(signum: int, _frame) -> None:
    """SIGTERM (``timeout`` in device.sh): end the running benchmark's process group too, then exit."""
    for pgid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def run_subprocess(name: str, cap: float, device: str, quick: bool, work: Path) -> dict:
    """Run one benchmark in its own process (its own CUDA context and memory) and stop it at ``cap`` seconds.
    The process leads a process group of its own (not a session: the device machine ends what a command leaves
    in its session), so stopping the group stops anything it started."""
    part, log = work / f"{name}.json", work / f"{name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    with open(log, "w") as fh:
        cmd = child_command(name, part, device, quick)
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, process_group=0)
        _children.add(proc.pid)
        try:
            rc = proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        finally:
            _children.discard(proc.pid)
    res = read_part(part, name)
    res["seconds"] = round(time.monotonic() - t0, 2)
    if rc is None:
        res["status"], res["reason"] = "timeout", f"stopped at its {cap:.0f} s cap; rows finished before are kept"
    elif rc != 0 or res.get("status") not in STATUSES:
        res["status"] = "failed"
        res["reason"] = res.get("reason") or f"exit code {rc}: {log_tail(log, 3)}"[:500]
    print(log.read_text(errors="replace"), end="", flush=True)
    return res


def run_inprocess(name: str, device: str, quick: bool, work: Path) -> dict:
    """Run one benchmark in this process (the unit test's mode: no cap is enforced)."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    from device_benches import run_benchmark

    t0 = time.monotonic()
    res = run_benchmark(name, device, quick, work / f"{name}.json").as_dict()
    res["seconds"] = round(time.monotonic() - t0, 2)
    return res


def not_started(name: str, budget: float) -> dict:
    return {
        "name": name,
        "status": "skipped",
        "reason": f"not started: the run's {budget:.0f} s budget was spent",
        "seconds": 0.0,
        "rows": [],
        "summary": {},
        "notes": [],
    }


# -------------------------------------------------------------------------------------------------------- goals
def rows_of(results: dict, name: str) -> list[dict]:
    bench = results["benchmarks"].get(name) or {}
    return bench.get("rows") or []


def goal(text: str, value, target: str, met: bool | None) -> dict:
    if isinstance(value, float) and not isinstance(value, bool):
        value = float(f"{value:.4g}")
    return {"goal": text, "value": value, "target": target, "met": met}


def codec_goals(results: dict) -> list[dict]:
    rows = [r for r in rows_of(results, "codec") if r.get("mode") == "batched"]
    out = []
    for mode in sorted({r["precision"] for r in rows}):
        mine = [r for r in rows if r["precision"] == mode]
        top = max(mine, key=lambda r: r["batch"])
        x = top["speedup_vs_loop"]
        out.append(goal(f"codec B={top['batch']} vs the one-by-one loop ({mode})", x, ">= 3x", x >= 3))
        worst = max(r["code_mismatch_vs_loop"] for r in mine)
        out.append(goal(f"codec codes identical to the loop's, every batch ({mode})", worst, "0", worst == 0))
    enc = {(r["precision"], r["batch"]): r for r in rows_of(results, "codec-encodec")}
    for mode in sorted({p for p, _ in enc}):
        batches = sorted(b for p, b in enc if p == mode)
        b = 16 if 16 in batches else batches[len(batches) // 2]
        ours = next((r for r in rows if r["precision"] == mode and r["batch"] == b), None)
        if ours:
            x = ours["total_x_realtime"] / enc[(mode, b)]["total_x_realtime"]
            out.append(goal(f"codec faster than EnCodec at B={b}, encode + decode ({mode})", x, "> 1x", x > 1))
    return out


def semantic_goals(results: dict) -> list[dict]:
    rows = rows_of(results, "semantic")
    out = []
    for mode in sorted({r["precision"] for r in rows}):
        mine = {r["implementation"]: r for r in rows if r["precision"] == mode}
        ours = mine.get("audiotok")
        if not ours:
            continue
        x = ours["speedup_vs_peer"]
        out.append(goal(f"semantic tokens/s vs s3tokenizer's batch path ({mode})", x, ">= 3x", x >= 3))
        peers = [r["tokens_per_s"] for k, r in mine.items() if k != "audiotok"]
        best = ours["tokens_per_s"] / max(peers)
        out.append(goal(f"semantic tokens/s vs the package's faster variant ({mode})", best, "(info)", None))
        rt = ours["x_realtime"]
        out.append(goal(f"semantic real-time factor ({mode})", rt, ">= 10,000x", rt >= 10_000))
        if mode == "fp32":
            same = ours["same_tokens_as_fp32_peer"]
            out.append(goal("semantic tokens identical to s3tokenizer's (fp32)", same, "True", bool(same)))
    return out


def feature_goals(results: dict) -> list[dict]:
    out = []
    for r in rows_of(results, "features"):
        if "batched" in r.get("method", "") and r.get("speedup_vs_librosa") is not None:
            out.append(goal(f"{r['feature']} batched on the device vs librosa per file", r["speedup_vs_librosa"],
                            "(info)", None))  # fmt: skip
    return out


def tts_goals(results: dict) -> list[dict]:
    out = []
    for name in ("tts-bundled", "tts-full"):
        for r in rows_of(results, name):
            c, ms, rtf = r["concurrency"], r["first_chunk_ms_mean"], r["rtf_per_stream"]
            out.append(goal(f"{name} first chunk, concurrency {c}", ms, "<= 150 ms", ms <= 150))
            out.append(goal(f"{name} RTF per stream, concurrency {c}", rtf, "<= 0.05", rtf <= 0.05))
    return out


def goals(results: dict) -> list[dict]:
    """The issue's goals, each read off this run's rows (missing rows: no goal line)."""
    out = []
    for fn in (codec_goals, semantic_goals, feature_goals, tts_goals):
        try:
            out += fn(results)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            out.append(goal(f"{fn.__name__}: could not be computed", f"{type(e).__name__}: {e}", "-", None))
    return out


# ------------------------------------------------------------------------------------------------------- report
def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, dict | list):
        return json.dumps(v)
    return str(v).replace("|", "/")


def table(rows: list[dict]) -> list[str]:
    """A markdown table of dict rows (columns: every key, in first-seen order)."""
    if not rows:
        return []
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return lines


def header(results: dict) -> list[str]:
    m = results["meta"]
    env = (results["benchmarks"].get("env") or {}).get("summary") or {}
    pk = env.get("packages") or {}
    lines = [f"# Device benchmark: {m['date']}, {m['gpu']}", ""]
    if m["quick"]:
        lines += [
            "**Smoke run** (tiny random models, CPU sizes): it checks the code paths; its numbers mean nothing.",
            "",
        ]
    lines += [
        f"`{m['command']}` at commit {m['commit'] or 'unknown'}{' (uncommitted changes)' if m['dirty'] else ''}; "
        f"device {env.get('device', m['device'])}, torch {pk.get('torch')}, CUDA {env.get('cuda')}, python "
        f"{env.get('python')}; {m['elapsed_s']:.0f} s in all (budget {m['budget_s']:.0f} s). Random weights unless "
        "a row says bundled; every figure is against its peer measured in the same run.",
        "",
    ]
    missing = [n for n in m.get("selected", SPECS) if n not in results["benchmarks"]]
    if m.get("stopped") or missing:
        lines += [f"**The run was stopped at its deadline**; not run: {', '.join(missing) or 'none'}.", ""]
    return lines


def markdown(results: dict) -> str:
    lines = header(results)
    lines += ["## Goals", ""] + (table(results["goals"]) or ["(none could be computed)"]) + [""]
    overview = [
        {
            "benchmark": name,
            "status": b["status"],
            "seconds": b.get("seconds"),
            "cap_s": b.get("cap_s"),
            "reason": b.get("reason"),
        }
        for name, b in results["benchmarks"].items()
    ]
    lines += ["## Benchmarks", ""] + table(overview) + [""]
    for name, b in results["benchmarks"].items():
        spec = SPECS.get(name)
        lines += [f"### {name}: {spec.title if spec else ''}", "", f"Peer: {spec.peer if spec else '-'}. "
                  f"Status: {b['status']}{' (' + b['reason'] + ')' if b.get('reason') else ''}.", ""]  # fmt: skip
        if b.get("summary"):
            lines += [", ".join(f"{k}: {fmt(v)}" for k, v in b["summary"].items()), ""]
        lines += table(b.get("rows") or [])
        lines += [""] + [f"- {n}" for n in b.get("notes") or []] + ([""] if b.get("notes") else [])
    return "\n".join(lines).rstrip() + "\n"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def gpu_name(results: dict) -> str:
    """The GPU's name from the env benchmark; else the device it saw; else the device asked for."""
    env = (results["benchmarks"].get("env") or {}).get("summary") or {}
    return env.get("gpu") or env.get("device") or results["meta"]["device"]


def write_outputs(results: dict, dirs: list[Path], start: float) -> list[Path]:
    """Rewrite ``<date>-<gpu>[-smoke].json`` and ``.md`` in each of ``dirs``."""
    m = results["meta"]
    m["gpu"] = gpu_name(results)
    m["elapsed_s"] = round(time.monotonic() - start, 1)
    results["goals"] = goals(results)
    stem = f"{m['date']}-{slug(m['gpu'])}" + ("-smoke" if m["quick"] else "")
    written = []
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for suffix, text in ((".json", json.dumps(results, indent=1)), (".md", markdown(results))):
            path = d / (stem + suffix)
            path.with_suffix(suffix + ".tmp").write_text(text)
            os.replace(path.with_suffix(suffix + ".tmp"), path)
            written.append(path)
    return written


def git_state() -> tuple[str | None, bool]:
    """(commit, uncommitted changes?) read with plain git queries; (None, False) without a repository."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None, False
    if commit.returncode != 0:
        return None, False
    return commit.stdout.strip(), bool(status.stdout.strip())


# ---------------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=os.environ.get("DEVICE", "auto"), help="auto (cuda if present), cuda, cpu")
    ap.add_argument("--quick", action="store_true", help="the smoke run: tiny models, seconds")
    ap.add_argument("--only", nargs="+", choices=list(SPECS), help="these benchmarks (env always runs first)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 450; smoke 300)")
    ap.add_argument("--results-dir", type=Path, default=None, help="default bench/results (smoke: bench/build/...)")
    ap.add_argument("--out-dir", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    ap.add_argument("--inprocess", action="store_true", help="no subprocesses and no caps (tests)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def selected(only: list[str] | None) -> list[str]:
    return list(SPECS) if not only else ["env"] + [n for n in SPECS if n in only and n != "env"]


def new_results(args: argparse.Namespace, budget: float) -> dict:
    commit, dirty = git_state()
    command = "bash bench/device.sh" + (" --smoke" if args.quick else "")
    meta = {"date": dt.date.today().isoformat(), "started": dt.datetime.now().isoformat(timespec="seconds")}
    meta |= {"device": args.device, "quick": args.quick, "budget_s": budget, "command": command}
    meta |= {"commit": commit, "dirty": dirty, "gpu": "unknown", "elapsed_s": 0.0, "stopped": False}
    meta["selected"] = selected(args.only)
    return {"schema": SCHEMA, "meta": meta, "benchmarks": {}, "goals": []}


def run_one(name: str, cap: float, args: argparse.Namespace, work: Path) -> dict:
    if cap < MIN_START_S:
        return not_started(name, args.budget_s)
    if args.inprocess:
        return run_inprocess(name, args.device, args.quick, work)
    return run_subprocess(name, cap, args.device, args.quick, work)


def stopped(name: str, work: Path, started: float) -> dict:
    """The benchmark that was running when the driver was stopped: its rows so far, status timeout."""
    res = read_part(work / f"{name}.json", name)
    res["seconds"] = round(time.monotonic() - started, 2)
    res["status"], res["reason"] = "timeout", "the whole run was stopped at its deadline; rows finished are kept"
    return res


def run_all(args: argparse.Namespace) -> dict:
    """Every selected benchmark under the budget; the outputs are rewritten after each one, and once more if the
    driver is stopped (SIGTERM) in the middle of one."""
    start = time.monotonic()
    args.budget_s = budget = args.budget or (300.0 if args.quick else 450.0)
    results = new_results(args, budget)
    dirs = [args.results_dir or (SMOKE_DIR if args.quick else BENCH_DIR / "results")]
    dirs += [args.out_dir] if args.out_dir else []
    work = Path(tempfile.mkdtemp(prefix="audiotok-device-bench-"))
    for name in selected(args.only):
        spec, left = SPECS[name], budget - (time.monotonic() - start)
        cap = min(spec.quick_cap_s if args.quick else spec.cap_s, left)
        print(f"=== {name}: {spec.title} (cap {cap:.0f} s, {left:.0f} s of the budget left)", flush=True)
        t0 = time.monotonic()
        try:
            res = run_one(name, cap, args, work)
        except SystemExit:
            results["benchmarks"][name] = stopped(name, work, t0) | {"cap_s": round(cap, 1)}
            results["meta"]["stopped"] = True
            write_outputs(results, dirs, start)
            raise
        res["cap_s"] = round(cap, 1)
        results["benchmarks"][name] = res
        print(f"=== {name}: {res['status']} in {res['seconds']:.1f} s {res.get('reason') or ''}", flush=True)
        written = write_outputs(results, dirs, start)
    print("wrote " + ", ".join(str(p) for p in written), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:  # a benchmark process, started by run_subprocess
        sys.path.insert(0, str(BENCH_DIR))
        from device_benches import run_benchmark

        run_benchmark(args.one, args.device, args.quick, args.part)
        return 0
    signal.signal(signal.SIGTERM, stop_children)
    results = run_all(args)
    print(markdown(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
