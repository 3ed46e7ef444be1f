"""Models from the Hugging Face Hub: `snapshot_download` of the files a model directory needs
(config, safetensors weights, tokenizer files; never pickle weights), into the standard HF cache.

HF_ENDPOINT and HF_HUB_OFFLINE are read at each call (huggingface_hub reads them once, at import),
so a test or a user can switch them without restarting; with HF_HUB_OFFLINE=1 only the cache is
used. When the Hub cannot be reached and the cache lacks the model, the error names the ways out.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core.errors import ModelLoadError

ALLOW_PATTERNS = [
    "config.json",
    "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json", "merges.txt",
]
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def hub_offline_as_now() -> Iterator[None]:
    """huggingface_hub's own offline switch, set from the environment as it is now: the library
    fixes it at import and refuses every request when it was set then, even after it is unset."""
    from huggingface_hub import constants
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = offline_mode()
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _ways_out(repo_id: str) -> str:
    return (f"download it where the Hub is reachable and pass the directory instead of {repo_id!r}, or set "
            "HF_HUB_OFFLINE=1 with a Hugging Face cache (HF_HOME / HF_HUB_CACHE) that already holds it")


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | Path | None = None,
             endpoint: str | None = None) -> Path:
    """The snapshot directory of `repo_id` at `revision` (default branch when None)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        with hub_offline_as_now():
            path = snapshot_download(repo_id, revision=revision,
                                     cache_dir=str(cache_dir) if cache_dir else None,
                                     allow_patterns=ALLOW_PATTERNS, local_files_only=offline_mode(),
                                     endpoint=endpoint)
    except HFValidationError as e:
        raise ModelLoadError(f"{repo_id!r} is not a valid Hugging Face model id (expected org/name); "
                             "pass an id like intfloat/multilingual-e5-small or a local directory") from e
    except GatedRepoError as e:
        raise ModelLoadError(f"Hugging Face model {where} is gated; accept its terms on the Hub and log in "
                             "(`hf auth login`), or pass a local directory") from e
    except RevisionNotFoundError as e:
        raise ModelLoadError(f"Hugging Face model {repo_id!r} has no revision {revision!r}; "
                             "name an existing branch, tag or commit") from e
    except RepositoryNotFoundError as e:
        raise ModelLoadError(f"Hugging Face model {repo_id!r} does not exist (or is private: log in with "
                             "`hf auth login`); check the id or pass a local directory") from e
    except LocalEntryNotFoundError as e:
        state = "HF_HUB_OFFLINE is set" if offline_mode() else "the Hub cannot be reached"
        raise ModelLoadError(f"cannot get Hugging Face model {where}: {state} and the cache does not hold "
                             f"it; {_ways_out(repo_id)}") from e
    except Exception as e:   # connection errors come from the HTTP client huggingface_hub bundles
        first = (str(e).splitlines() or [""])[0]
        raise ModelLoadError(f"cannot download Hugging Face model {where} ({type(e).__name__}: {first}); "
                             f"{_ways_out(repo_id)}") from e
    path = Path(path)
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"Hugging Face model {where} has no safetensors weights (model.safetensors); "
                             "this harness never loads pickle weights (pytorch_model.bin): pick a revision "
                             "with safetensors, or convert a trusted copy and pass its directory")
    return path


def snapshot_revision(path: Path) -> str | None:
    """The commit of a snapshot directory of the HF cache (`.../snapshots/<commit>`)."""
    return path.name if COMMIT_RE.match(path.name) and path.parent.name == "snapshots" else None
