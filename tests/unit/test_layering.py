"""The package layering, checked on the source: module-level imports only (lazy imports inside functions are how
the CLI reaches its ``tts``/``asr`` subcommands, as DECISIONS allows)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (including under ``if``/``try`` at the top, not inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, (ast.If, ast.Try)):
                is_type_checking = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                if not is_type_checking:
                    visit(node.body)
                    visit(getattr(node, "orelse", []))
                    for h in getattr(node, "handlers", []):
                        visit(h.body)

    visit(tree.body)
    return found


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


def _top(module: str) -> str:
    return module.split(".")[0]


def test_core_imports_neither_tts_nor_asr_at_module_level():
    bad = {
        str(p.relative_to(ROOT)): sorted(m for m in _top_level_imports(p) if _top(m) in ("tts", "asr"))
        for p in _files("audiotok")
    }
    assert not {k: v for k, v in bad.items() if v}


def test_tts_and_asr_use_only_the_core_and_themselves():
    for pkg, other in (("tts", "asr"), ("asr", "tts")):
        bad = {
            str(p.relative_to(ROOT)): sorted(m for m in _all_imports(p) if _top(m) in (other, "recipes", "app"))
            for p in _files(pkg)
        }
        assert not {k: v for k, v in bad.items() if v}, pkg


def test_nothing_imports_the_recipes():
    """Recipes are scripts: the packages, the bench, the app and the recipes themselves import none of them."""
    places = _files("audiotok", "tts", "asr", "bench", "recipes") + [ROOT / "app.py"]
    bad = {str(p.relative_to(ROOT)): sorted(m for m in _all_imports(p) if _top(m) == "recipes") for p in places}
    assert not {k: v for k, v in bad.items() if v}


def test_generic_training_and_metrics_do_not_import_the_codec():
    places = [ROOT / "audiotok" / "train" / "gan.py", ROOT / "audiotok" / "metrics.py"]
    bad = {
        str(p.relative_to(ROOT)): sorted(m for m in _all_imports(p) if m.startswith("audiotok.codec"))
        for p in places
        if p.exists()
    }
    assert not {k: v for k, v in bad.items() if v}


def test_the_layering_check_sees_a_violation(tmp_path):
    """The walker itself: a module-level import is found, one inside a function is not."""
    f = tmp_path / "m.py"
    f.write_text("import tts.lm\nfrom asr import adapters\n\ndef g():\n    import tts.flow\n")
    assert _top_level_imports(f) == {"tts.lm", "asr"}
    assert "tts.flow" in _all_imports(f)
