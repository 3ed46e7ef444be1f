"""`harness export`: a compressed model out of the stage cache, as a directory ready for the Hub.

    key = resolve_model(store, "me5-small--mlt_Latn--p92")    # a model key, or its name
    out = export_model(store, key, Path("exports/p92"))      # weights, tokenizer, README.md
    push_to_hub(out, "org/name", private=True)

The directory holds the model's safetensors, config and tokenizer files and its compression
manifest, copied from the cache, plus README.md (the model card, harness/card.py) and, when the
licence field is `other`, LICENSE naming every input's licence.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from compression.manifest import MANIFEST_FILE
from core.errors import UserError
from core.registry import did_you_mean
from harness.card import card_facts, model_card
from harness.store import Store
from models.hub import hub_offline_as_now, offline_mode

# What a plain AutoModel / AutoTokenizer load needs, and the provenance; nothing else of the cache
# entry (vocab maps, distillation checkpoints) is published.
MODEL_FILES = ("*.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
               "sentencepiece.bpe.model", "spiece.model", MANIFEST_FILE)


def resolve_model(store: Store, name: str) -> str:
    """The model key `name` denotes: a model key, or a model's name (teacher--language--point, as
    the leaderboard shows it) when exactly one stored model has it."""
    if not store.path.exists():
        raise UserError(f"no results database at {store.path}: run `harness eval` first, or pass --db")
    _, rows = store.query("SELECT model_key, name, kind FROM models ORDER BY model_key", read_only=True)
    keys = [r[0] for r in rows]
    if name in keys:
        return name
    named = [r[0] for r in rows if r[1] == name]
    if len(named) == 1:
        return named[0]
    if named:
        raise UserError(f"{name!r} names {len(named)} stored builds ({', '.join(named)}): pass one model key")
    compressed = [r[0] for r in rows if r[2] == "compressed"]
    hint = did_you_mean(name, keys + sorted({r[1] for r in rows if r[1]}))
    if hint:
        listed = ""
    elif compressed:
        more = f" and {len(compressed) - 5} more (`harness results`)" if len(compressed) > 5 else ""
        listed = f"; compressed models: {', '.join(compressed[:5])}{more}"
    else:
        listed = "; the database holds no compressed model"
    raise UserError(f"unknown model {name!r} in {store.path}{hint}{listed}")


def export_model(store: Store, model_key: str, out_dir: Path, *, repo_id: str | None = None,
                 overwrite: bool = False) -> Path:
    """Copy the model's files into `out_dir` and write its card; return `out_dir`."""
    facts = card_facts(store, model_key)
    model = facts["model"]
    if model["kind"] != "compressed" or not model["manifest"]:
        raise UserError(f"{model_key!r} is a {model['kind']}, not a compressed model: publish its source "
                        f"({model['source']}) instead")
    src = Path(model["path"] or "")
    if not model["path"] or not (src / "config.json").is_file():
        raise UserError(f"the directory of {model_key!r} ({model['path']}) is gone: rebuild it with "
                        "`harness compress --grid GRID` (the stage cache keeps it by its key)")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise UserError(f"{out_dir} exists and is not empty: choose another --to, or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = sorted({p for pattern in MODEL_FILES for p in src.glob(pattern) if p.is_file()})
    for path in copied:
        shutil.copy2(path, out_dir / path.name)
    card, decision = model_card(facts, repo_name=repo_id)
    card.save(out_dir / "README.md")
    if decision.license == "other":
        (out_dir / "LICENSE").write_text(decision.notice(), encoding="utf-8")
    return out_dir


def push_to_hub(folder: Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create the repository (if needed) and upload the exported folder; return the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if offline_mode():
        raise UserError(f"cannot upload to {repo_id!r}: HF_HUB_OFFLINE is set (unset it to push, or "
                        "drop --push-to-hub and upload the exported folder later)")
    # HF_ENDPOINT and the offline switch are read here, at each call (huggingface_hub reads them
    # once, at import)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        with hub_offline_as_now():
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                     commit_message="Upload compressed model and card (harness export)")
    except HfHubHTTPError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"uploading to {repo_id!r} failed: {first} (log in with `hf auth login` "
                        "or set HF_TOKEN)") from None
    return str(getattr(info, "commit_url", info))
