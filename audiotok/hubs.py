"""The resolvers that fetch: official S3Tokenizer names and Hugging Face hub ids (used by :mod:`audiotok.registry`).

**S3Tokenizer names** (``speech_tokenizer_v1``, ``speech_tokenizer_v1_25hz``, ``speech_tokenizer_v2_25hz``) resolve
as the ``s3tokenizer`` package's ``load_model`` does: ``<name>.onnx`` in its cache (``cache_dir``, else
``$XDG_CACHE_HOME/s3tokenizer``, default ``~/.cache/s3tokenizer``) when its sha256 is the release's, else its
download from ModelScope into that cache (sha256-checked).

**Hub ids** ``org/name`` (a whole repo) or ``org/name:path`` (a file or folder in it), at ``revision``, through
``huggingface_hub`` (``hf_hub_download`` / ``snapshot_download``, so ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` and ``cache_dir`` work as everywhere; the environment is read at call time). A repo is read as:

1. one of our model folders uploaded as is (``pipeline.json`` of a TTS, ``audiotok_tts_lm.json`` of its LM,
   ``model.safetensors`` of the other bundled models);
2. one WavTokenizer ``.ckpt``, with the YAML beside it (same stem, or the repo's only one), or, for the released
   files whose repos ship none, the built-in config of that release (:data:`audiotok.codec.official.RELEASES`);
3. an S3Tokenizer ``speech_tokenizer*.onnx`` (or the repo's only ``.onnx``), e.g. ``FunAudioLLM/CosyVoice2-0.5B``.

Several candidates of one kind (``novateur/WavTokenizer`` holds two checkpoints) ask for ``org/name:file``.
Offline, the repo's files are listed from its cached snapshot; a miss says so and what to do.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

from audiotok.registry import ModelNotFound, Query, Resolved, resolve_path
from audiotok.utils import atomic_path, sha256_file

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<path>[^:]+))?$")
OUR_FOLDERS = ("pipeline.json", "audiotok_tts_lm.json")  # files that make a folder one model
S3_KINDS = (None, "semantic", "tokenizer")
_OFFLINE_HINT = "pass a path, or run once with network"


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now, not only when ``huggingface_hub`` was imported."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_cache(cache_dir: str | None = None) -> str:
    """The hub cache: ``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default."""
    from huggingface_hub import constants

    if cache_dir:
        return str(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return constants.HF_HUB_CACHE


# --------------------------------------------------------------------------------------- official S3Tokenizer names
def s3_cache(cache_dir: str | None = None) -> Path:
    """The ``s3tokenizer`` package's download root."""
    if cache_dir:
        return Path(cache_dir)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "s3tokenizer"


def s3_file(name: str, cache_dir: str | None = None) -> Path:
    """The release ``.onnx`` of an official name: from the s3tokenizer cache, or downloaded into it."""
    from audiotok.semantic.official import RELEASES

    release = RELEASES[name]
    target = s3_cache(cache_dir) / f"{name}.onnx"
    if target.is_file() and sha256_file(target) == release.sha256:
        return target
    state = f"{target} is absent" if not target.is_file() else f"{target}'s sha256 is not the release's"
    if offline():
        raise ModelNotFound(
            f"{name}: not in the s3tokenizer cache ({state}) and downloads are off (HF_HUB_OFFLINE): {_OFFLINE_HINT}"
            " (the .onnx of the release)"
        )
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(release.url, timeout=60) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            if sha256_file(tmp) != release.sha256:
                raise OSError(f"the download from {release.url} does not have the release's sha256")
    except OSError as err:  # urllib's errors are OSErrors
        raise ModelNotFound(
            f"{name}: not in the s3tokenizer cache ({state}) and the download failed ({err}): {_OFFLINE_HINT}"
        ) from None
    return target


def resolve_s3_name(q: Query) -> Resolved | None:
    """An official S3Tokenizer name -> its ``.onnx`` (None for any other string)."""
    from audiotok.semantic.official import RELEASES

    if q.spec not in RELEASES or q.kind not in S3_KINDS:
        return None
    path = s3_file(q.spec, q.cache_dir)
    return Resolved(path, "audiotok-s3", q.spec, "official S3Tokenizer name", {"official": q.spec})


# ---------------------------------------------------------------------------------------------------- hub ids
def parse_hub_id(spec: str) -> tuple[str, str | None] | None:
    """``org/name`` -> (``org/name``, None); ``org/name:path`` -> (``org/name``, ``path``); None if not an id."""
    m = HUB_ID.match(spec)
    if m is None or ".." in m["repo"] or "--" in m["repo"]:
        return None
    return m["repo"], m["path"]


def _miss(repo: str, why: str) -> ModelNotFound:
    return ModelNotFound(f"{repo!r} is no bundled name or local path; as a hub id: {why}")


def _unreachable(repo: str, cache: str, err: Exception | None) -> ModelNotFound:
    reason = "HF_HUB_OFFLINE is set" if err is None else f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return _miss(repo, f"not in the local cache ({cache}) and the hub is unreachable ({reason}): {_OFFLINE_HINT}")


def _cached_snapshot(repo: str, revision: str | None, cache: str) -> Path | None:
    """The cached snapshot folder of ``repo`` at ``revision`` (possibly partial), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True))
    except IncompleteSnapshotError as err:
        return Path(err.snapshot_path)
    except LocalEntryNotFoundError:
        return None


def _repo_files(repo: str, revision: str | None, cache: str) -> list[str]:
    """The repo's file paths: from the hub, or (offline, or the hub unreachable) from the cached snapshot."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    err = None
    if not offline():
        try:
            return HfApi().list_repo_files(repo, revision=revision)
        except RevisionNotFoundError:
            raise _miss(repo, f"the repo has no revision {revision!r}") from None
        except RepositoryNotFoundError:
            raise _miss(repo, "no such repo on the hub (or it is private: log in with `hf auth login`)") from None
        except Exception as e:  # connection errors, timeouts, hub downtime: fall back to the cache, as hf does
            err = e
    snapshot = _cached_snapshot(repo, revision, cache)
    if snapshot is None:
        raise _unreachable(repo, cache, err)
    return sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())


def _fetch_file(repo: str, filename: str, revision: str | None, cache: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache, local_files_only=offline()))
    except LocalEntryNotFoundError as err:
        raise _unreachable(repo, cache, None if offline() else err) from None
    except (EntryNotFoundError, HfHubHTTPError) as err:
        raise _miss(repo, f"cannot fetch {filename} ({type(err).__name__})") from None


def _fetch_folder(repo: str, folder: str, revision: str | None, cache: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, IncompleteSnapshotError, LocalEntryNotFoundError

    patterns = [f"{folder}/*"] if folder else None
    try:
        root = snapshot_download(
            repo, revision=revision, cache_dir=cache, local_files_only=offline(), allow_patterns=patterns
        )
    except (IncompleteSnapshotError, LocalEntryNotFoundError) as err:
        raise _unreachable(repo, cache, None if offline() else err) from None
    except HfHubHTTPError as err:
        raise _miss(repo, f"cannot fetch the snapshot ({type(err).__name__})") from None
    return Path(root) / folder if folder else Path(root)


def _sample(files: list[str], n: int = 8) -> str:
    return ", ".join(files[:n]) + (f", ... ({len(files) - n} more)" if len(files) > n else "") or "no files"


def _candidates(files: list[str], kind: str | None) -> list[tuple[str, list[str]]]:
    """(what, files) of each official format in a listing, in the order ``kind`` prefers."""
    onnx = [f for f in files if f.endswith(".onnx")]
    s3 = [f for f in onnx if Path(f).name.startswith("speech_tokenizer")] or (onnx if len(onnx) == 1 else [])
    found = [("WavTokenizer checkpoints", [f for f in files if f.endswith(".ckpt")]), ("S3Tokenizer ONNX files", s3)]
    return found[::-1] if kind == "semantic" else found


def pick(repo: str, files: list[str], kind: str | None = None) -> tuple[str, str]:
    """What to fetch from a repo (or a folder in it) listing ``files``: ("folder", "") or ("file", path)."""
    top = {f for f in files if "/" not in f}
    if top.intersection(OUR_FOLDERS):
        return "folder", ""
    if "model.safetensors" in top:
        return "file", "model.safetensors"
    for what, found in _candidates(files, kind):
        if len(found) == 1:
            return "file", found[0]
        if found:
            raise _miss(repo, f"it holds {len(found)} {what} ({_sample(found)}): name one, e.g. {repo}:{found[0]}")
    raise _miss(
        repo,
        "no model this suite reads (a model folder of ours, model.safetensors, one WavTokenizer .ckpt, an "
        f"S3Tokenizer .onnx) among its files: {_sample(files)}",
    )


def _locate(repo: str, path: str | None, files: list[str], kind: str | None) -> tuple[str, str]:
    """(layout, repo path) for ``org/name[:path]``; a path may be a file or a folder of the repo."""
    if path is None:
        return pick(repo, files, kind)
    path = path.strip("/")
    if path in files:
        return "file", path
    inner = [f[len(path) + 1 :] for f in files if f.startswith(path + "/")]
    if not inner:
        raise _miss(repo, f"no file or folder {path!r} in the repo; it holds: {_sample(files)}")
    layout, found = pick(f"{repo}:{path}", inner, kind)
    return layout, f"{path}/{found}".strip("/")


def _parent(repo_path: str) -> str:
    parent = Path(repo_path).parent.as_posix()
    return "" if parent == "." else parent


def _wavtokenizer_config(repo: str, ckpt: str, files: list[str], revision: str | None, cache: str):
    """The config of a WavTokenizer checkpoint in a repo (a fetched YAML path or a built-in dict), or None."""
    from audiotok.codec.official import pick_config

    folder = _parent(ckpt)
    yamls = [f for f in files if f.endswith((".yaml", ".yml")) and _parent(f) == folder]
    config = pick_config(Path(ckpt).name, [Path(y).name for y in yamls])
    if isinstance(config, str):
        return _fetch_file(repo, f"{folder}/{config}".strip("/"), revision, cache)
    return config


def resolve_hub(q: Query) -> Resolved | None:
    """A hub id -> the fetched (or cached) files of the model it names (None for a string that is no hub id)."""
    parsed = parse_hub_id(q.spec)
    if parsed is None:
        return None
    repo, path = parsed
    cache = hub_cache(q.cache_dir)
    files = _repo_files(repo, q.revision, cache)
    layout, target = _locate(repo, path, files, q.kind)
    if layout == "folder":
        local = _fetch_folder(repo, target, q.revision, cache)
    else:
        local = _fetch_file(repo, target, q.revision, cache)
    found = resolve_path(local)
    if local.suffix == ".ckpt":
        config = _wavtokenizer_config(repo, target, files, q.revision, cache)
        found.options.pop("config", None)
        if config is not None:
            found.options["config"] = config
    found.name = q.spec
    found.source = f"hub {repo}@{q.revision or 'main'}"
    return found
