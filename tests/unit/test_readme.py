"""The README stays a short page for users whose commands, links and layout are true.

* ``README.md`` has at most :data:`MAX_LINES` lines and its first code block starts with ``make demo`` and
  ``make test``;
* in the ````bash`` blocks of ``README.md`` and of the design notes ``docs/*.md``, every ``audiotok SUB`` line names
  a subcommand whose ``--help`` exits 0, every ``make X`` line a Makefile target, and every repository path
  (``recipes/...``, ``bench/...``, ``audiotok/...``) an existing file or folder. ``docs/results/`` is left out of
  this check: its commands record what was run on the day;
* every relative Markdown link in ``README.md`` and ``docs/**/*.md`` resolves to a file or folder of the repository;
* the README's layout lists every top-level folder git tracks, and every ``audiotok`` subpackage.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_LINES = 220
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.S | re.M)
PATH_TOKEN = re.compile(r"^(recipes|bench|audiotok|tts|asr|tests)/[\w./-]*[\w/]$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)


def _markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def _command_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks(text: str, lang: str | None = None) -> list[str]:
    return [body for fence_lang, body in FENCE.findall(text) if lang is None or fence_lang == lang]


def _tokens(line: str) -> list[str]:
    """The words of a shell line, comments dropped (a line shlex cannot split is split on blanks)."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split("#", 1)[0].split()


def _bash_lines(path: Path) -> list[list[str]]:
    lines = [_tokens(line) for block in _blocks(path.read_text(), "bash") for line in block.splitlines()]
    return [t for t in lines if t]


def _subcommands() -> list[str]:
    subs = {t[1] for path in _command_files() for t in _bash_lines(path) if t[0] == "audiotok" and len(t) > 1}
    return sorted(subs)


def _make_targets() -> set[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\- ]+):(?!=)", line)
        if m:
            targets.update(m.group(1).split())
    return targets


# one interpreter asks every subcommand for its --help: argparse exits 0 (SystemExit(0)) for a known one
_HELP_SCRIPT = """
import contextlib, io, json, sys
from audiotok.cli import main
codes = {}
for sub in sys.argv[1:]:
    sys.argv = ["audiotok", sub, "--help"]
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            rc = main()
    except SystemExit as exit_:
        rc = exit_.code
    codes[sub] = [0 if rc is None else rc, sink.getvalue()[-2000:]]
print("HELP-RESULTS " + json.dumps(codes))
"""


@functools.lru_cache(maxsize=1)
def _help_results() -> dict[str, list]:
    subs = _subcommands()
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT, *subs], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HELP-RESULTS ")]
    assert proc.returncode == 0 and lines, f"the --help run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("HELP-RESULTS "))


# ------------------------------------------------------------------------------------------------------- size
def test_readme_is_short_and_starts_with_make_demo_and_make_test():
    text = README.read_text()
    n_lines = len(text.splitlines())
    assert n_lines <= MAX_LINES, f"README.md has {n_lines} lines (at most {MAX_LINES}): move details into docs/"
    blocks = _blocks(text)
    assert blocks, "README.md has no code block"
    commands = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    assert len(commands) >= 2, commands
    assert _tokens(commands[0])[:2] == ["make", "demo"], commands[0]
    assert _tokens(commands[1])[:2] == ["make", "test"], commands[1]


# --------------------------------------------------------------------------------------------------- commands
def test_the_docs_name_audiotok_subcommands():
    assert "encode" in _subcommands()


@pytest.mark.parametrize("sub", _subcommands())
def test_audiotok_subcommand_exists(sub):
    code, output = _help_results()[sub]
    assert code == 0, f"`audiotok {sub} --help` exited {code!r}:\n{output}"


@pytest.mark.parametrize("path", _command_files(), ids=_rel)
def test_make_targets_exist(path):
    targets = _make_targets()
    missing = [
        name
        for t in _bash_lines(path)
        if t[0] == "make"
        for name in t[1:]
        if not name.startswith("-") and "=" not in name and name not in targets
    ]
    assert not missing, f"{_rel(path)}: make targets not in the Makefile: {missing}"


@pytest.mark.parametrize("path", _command_files(), ids=_rel)
def test_paths_in_commands_exist(path):
    named = {
        part.rstrip(",;")
        for t in _bash_lines(path)
        for token in t
        for part in token.split("=")
        if PATH_TOKEN.match(part.rstrip(",;"))
    }
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{_rel(path)}: commands name files that do not exist: {missing}"


def test_the_commands_check_sees_a_missing_script(tmp_path):
    """The parsing itself: a recipe path after `python`, a make target and a subcommand are all found."""
    doc = tmp_path / "x.md"
    doc.write_text("```bash\npython recipes/nope/train.py --config c.yaml  # a comment\nmake demo\n```\n")
    lines = _bash_lines(doc)
    assert lines == [["python", "recipes/nope/train.py", "--config", "c.yaml"], ["make", "demo"]]
    assert PATH_TOKEN.match(lines[0][1]) and not (ROOT / lines[0][1]).exists()
    assert "demo" in _make_targets() and "test" in _make_targets()


# ------------------------------------------------------------------------------------------------------ links
def _links(text: str) -> list[str]:
    prose = FENCE.sub("", text)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return LINK.findall(prose) + REF_LINK.findall(prose)


@pytest.mark.parametrize("path", _markdown_files(), ids=_rel)
def test_relative_links_resolve(path):
    broken = []
    for target in _links(path.read_text()):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto, ...; an anchor in the same page
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            broken.append(target)
    assert not broken, f"{_rel(path)}: links that lead nowhere: {broken}"


def test_the_link_check_sees_links():
    text = "See [a](docs/a.md#x), ![b](b.png), [c](https://x.org), `[d](no.md)`.\n\n[e]: e.md\n"
    assert _links(text) == ["docs/a.md#x", "b.png", "https://x.org", "e.md"]


# ----------------------------------------------------------------------------------------------------- layout
def _layout() -> str:
    m = re.search(r"^## Layout\s*$(.*?)(?=^## |\Z)", README.read_text(), re.S | re.M)
    assert m, "README.md has no '## Layout' section"
    return m.group(1)


def _tracked_top_level_folders() -> set[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"not a git checkout ({err})")
    return {p.split("/", 1)[0] for p in out.split("\0") if "/" in p and not p.startswith(".")}


def test_layout_lists_every_tracked_top_level_folder():
    layout = _layout()
    missing = sorted(d for d in _tracked_top_level_folders() if not re.search(rf"(?m)^{re.escape(d)}/", layout))
    assert not missing, f"the README's layout does not list these top-level folders: {missing}"


def test_layout_lists_only_existing_folders():
    listed = re.findall(r"(?m)^([\w.-]+)/", _layout())
    assert listed
    assert not [d for d in listed if not (ROOT / d).is_dir()]


def test_layout_lists_every_core_subpackage():
    layout = _layout()
    subpackages = sorted(p.parent.name for p in (ROOT / "audiotok").glob("*/__init__.py"))
    missing = [name for name in subpackages if not re.search(rf"\b{re.escape(name)}\b", layout)]
    assert not missing, f"the README's layout does not list these audiotok subpackages: {missing}"
