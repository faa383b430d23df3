"""Files from strangers, statically: hub ids mean loading files someone else made, so no loader may run code.

Every ``torch.load`` passes ``weights_only=True``, and nothing unpickles, loads unsafe YAML or passes
``trust_remote_code``. (The fuzz that feeds the loaders mutated files is ``test_fuzz_files``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ static check
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def unsafe_loads(source: str, where: str = "<source>") -> list[str]:
    """What in ``source`` could run code while reading a file: ``torch.load`` without ``weights_only=True``,
    ``pickle``/``dill``/``joblib``/``marshal`` loads, ``yaml.load``/``unsafe_load``, ``np.load(allow_pickle=True)``,
    ``torch.jit.load`` and ``trust_remote_code`` other than False."""
    found = []
    tree = ast.parse(source, where)
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
        module = node.module if isinstance(node, ast.ImportFrom) else None
        if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal") for n in names) or (
            module and module.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib", "marshal")
        ):
            found.append(f"{where}:{node.lineno}: imports {module or names}")
    for call, func in _calls(tree):
        kw = {k.arg: k.value for k in call.keywords}
        line = f"{where}:{call.lineno}: {ast.unparse(call)[:120]}"
        if func == "torch.load":
            value = kw.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(line)
        elif func in ("torch.jit.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
            found.append(line)
        elif func in ("np.load", "numpy.load") and not (
            isinstance(kw.get("allow_pickle", ast.Constant(False)), ast.Constant)
            and kw.get("allow_pickle", ast.Constant(False)).value is False
        ):
            found.append(line)
        if "trust_remote_code" in kw and not (
            isinstance(kw["trust_remote_code"], ast.Constant) and kw["trust_remote_code"].value is False
        ):
            found.append(line)
    return found


def test_no_loader_can_run_code_from_a_file():
    files = [p for d in ("audiotok", "tts", "asr") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    bad = [hit for p in files for hit in unsafe_loads(p.read_text(), str(p.relative_to(ROOT)))]
    assert not bad, "loaders that could run code from a file:\n" + "\n".join(bad)
    # the check sees each kind of violation
    sample = (
        "import pickle\nimport torch, yaml\ntorch.load(p)\ntorch.load(p, weights_only=False)\nyaml.load(s)\n"
        "AutoModel.from_pretrained(x, trust_remote_code=True)\ntorch.load(p, weights_only=True)\nyaml.safe_load(s)\n"
    )
    assert [h.split(":")[1] for h in unsafe_loads(sample)] == ["1", "3", "4", "5", "6"]
