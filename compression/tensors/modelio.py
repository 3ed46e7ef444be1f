"""Loading a parent model directory as plain tensors, and saving a child as a Hugging Face directory.

Stages work on the parent's tensors (a name -> tensor dict) and write the child with safetensors
and a config.json, so the child is exactly what the stage computed: no randomly initialised
module is ever saved, tied weights stay tied (the decoder weight is simply not stored), and the
child loads with AutoModel / AutoModelFor*.from_pretrained and trust_remote_code=False.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from compression.tensors.layout import check_model_type, tensor_axes
from core.errors import ModelLoadError
from models.loading import quiet_transformers

WEIGHTS_FILE = "model.safetensors"
VOCAB_MAP_FILE = "vocab_map.json"          # {parent_ids, teacher_ids} of a trimmed vocabulary
KEPT_TOKEN_IDS_FILE = "kept_token_ids.json"  # teacher_ids alone: what compression.distill.loop reads
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "chat_template.jinja")
# slow-tokenizer files: copied as they are, except by the vocabulary stage, which rewrites
# tokenizer.json and must drop these (they would describe the parent's vocabulary)
SLOW_TOKENIZER_FILES = ("vocab.txt", "sentencepiece.bpe.model", "spiece.model", "vocab.json",
                        "merges.txt")
CARRIED_FILES = TOKENIZER_FILES + SLOW_TOKENIZER_FILES + ("generation_config.json", VOCAB_MAP_FILE,
                                                          KEPT_TOKEN_IDS_FILE)


def read_config(path: Path):
    from transformers import AutoConfig
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a Hugging Face model directory (no config.json)")
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    check_model_type(config)
    return config


def has_mlm_head(config) -> bool:
    return any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in (config.architectures or []))


def model_class(config):
    from transformers import AutoModel, AutoModelForMaskedLM
    return AutoModelForMaskedLM if has_mlm_head(config) else AutoModel


def load_model(path: Path | str, *, dtype: torch.dtype | None = None) -> nn.Module:
    """The model of a directory (with its MLM head when it has one), in eval mode."""
    path = Path(path)
    config = read_config(path)
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"{path}: no safetensors weights (only safetensors are loaded; "
                             "convert the checkpoint with `save_pretrained(safe_serialization=True)`)")
    with quiet_transformers():
        model = model_class(config).from_pretrained(
            path, trust_remote_code=False, use_safetensors=True,
            **({"dtype": dtype} if dtype is not None else {}))
    return model.eval()


def load_state(path: Path | str) -> tuple[object, dict[str, torch.Tensor]]:
    """(config, tensors) of a model directory: the canonical names of its stored tensors.

    Loading through transformers fixes legacy names (LayerNorm gamma/beta) and drops foreign
    heads (mBERT's next-sentence head); tensors the checkpoint lacks (a pooler) are left out
    rather than saved as random weights, and tied tensors appear once.
    """
    path = Path(path)
    config = read_config(path)
    with quiet_transformers():
        model, info = model_class(config).from_pretrained(
            path, trust_remote_code=False, use_safetensors=True, output_loading_info=True)
    missing = set(info.get("missing_keys", ()))
    tied = getattr(model, "_tied_weights_keys", None) or {}
    tied_targets = set(tied) if isinstance(tied, dict) else set()
    # the tied copy (e.g. the MLM decoder weight) goes last, so its source is the one kept
    items = sorted(model.state_dict().items(), key=lambda kv: kv[0] in tied_targets)
    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in items:
        if name in missing or tensor.data_ptr() in seen:
            continue
        tensor_axes(name)  # raises on a tensor no stage knows how to transform
        seen.add(tensor.data_ptr())
        state[name] = tensor.detach()
    return model.config, state


def save_model(out_dir: Path, config, state: dict[str, torch.Tensor], *, parent_dir: Path | None,
               skip_files: tuple[str, ...] = ()) -> None:
    """Write `state` and `config` as a Hugging Face directory, carrying the parent's tokenizer
    files, generation config and vocabulary map (except `skip_files`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous().clone() for name, t in state.items()}
    save_file(tensors, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    config.save_pretrained(out_dir)
    if parent_dir is not None:
        copy_carried_files(Path(parent_dir), out_dir, skip=skip_files)


def copy_carried_files(parent_dir: Path, out_dir: Path, *, skip: tuple[str, ...] = ()) -> None:
    for name in CARRIED_FILES:
        src = parent_dir / name
        if name not in skip and src.is_file() and not (out_dir / name).exists():
            shutil.copyfile(src, out_dir / name)


def read_vocab_map(model_dir: Path) -> dict | None:
    path = Path(model_dir) / VOCAB_MAP_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - surfaced as one line
        raise ModelLoadError(f"{model_dir}: the tokenizer does not load ({err})") from None
