"""Loading a student and a teacher for distillation, and mapping the student's token ids to the teacher's.

A student whose vocabulary was trimmed from the teacher's carries ``kept_token_ids.json`` in its
directory: a JSON list whose index is the student's token id and whose value is the id of the same
token in the *root* model (the original teacher of the compression chain), composed along the chain
by every vocabulary stage. Distillation then tokenises with the student's tokenizer, feeds the
teacher the same pieces under its own ids, and compares MLM logits on the kept ids only. Without the
file, student and teacher must share one tokenizer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel

from core.errors import ModelLoadError

KEPT_TOKEN_IDS_FILE = "kept_token_ids.json"
# Written by the hidden stage, read by the distillation after it, never carried further (it is not
# among modelio's CARRIED_FILES): the teacher x student hidden-width matrix M with teacher state ~=
# student state @ M.T (one-hot columns of the kept dimensions, or the SVD projection). It starts
# the hidden-state loss's projection.
HIDDEN_MAP_FILE = "hidden_map.safetensors"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_CHECK_TEXTS = 64  # texts encoded by both tokenizers to confirm they agree


def weight_names(model_dir: Path) -> set[str]:
    """Names of the tensors stored in a model directory's safetensors file(s)."""
    model_dir = Path(model_dir)
    index = model_dir / SAFETENSORS_INDEX_FILE
    if index.is_file():
        return set(json.loads(index.read_text())["weight_map"])
    single = model_dir / SAFETENSORS_FILE
    if not single.is_file():
        raise ModelLoadError(f"no {SAFETENSORS_FILE} in {model_dir}; distillation loads safetensors only "
                             f"(re-save the model with save_pretrained(..., safe_serialization=True))")
    with safe_open(str(single), framework="pt") as f:
        return set(f.keys())


def has_mlm_head(model_dir: Path) -> bool:
    """Whether the directory holds trained weights of an MLM head (not just an encoder)."""
    config = _load_config(model_dir)
    try:
        with torch.device("meta"):
            mlm = AutoModelForMaskedLM.from_config(config)
    except (ValueError, KeyError):  # no masked-LM class for this architecture
        return False
    prefix = mlm.base_model_prefix
    head_modules = {name.split(".")[0] for name in mlm.state_dict() if not name.startswith(prefix + ".")}
    return any(name.split(".")[0] in head_modules for name in weight_names(model_dir))


def _load_config(model_dir: Path):
    try:
        return AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read the model config in {model_dir} ({e}); give a Hugging Face "
                             f"model directory with config.json") from e


def load_model(model_dir: Path, *, with_mlm_head: bool) -> PreTrainedModel:
    """The model in float32 from safetensors, as AutoModelForMaskedLM or AutoModel, no remote code."""
    cls = AutoModelForMaskedLM if with_mlm_head else AutoModel
    names = weight_names(model_dir)  # a clear error when there is no safetensors file
    kwargs = dict(trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
    if not with_mlm_head and not any(n.split(".")[0] == "pooler" or ".pooler." in n for n in names):
        kwargs["add_pooling_layer"] = False  # don't add a random pooler the saved model never had
    try:
        try:
            return cls.from_pretrained(str(model_dir), **kwargs)
        except TypeError:  # an architecture without that option
            kwargs.pop("add_pooling_layer", None)
            return cls.from_pretrained(str(model_dir), **kwargs)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the model in {model_dir} with {cls.__name__} ({e})") from e


def load_tokenizer(model_dir: Path):
    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the tokenizer in {model_dir} ({e}); the directory needs a fast "
                             f"tokenizer (tokenizer.json)") from e
    if not getattr(tok, "is_fast", False):
        raise ModelLoadError(f"the tokenizer in {model_dir} is not a fast tokenizer; save one with tokenizer.json")
    return tok


def read_kept_token_ids(model_dir: Path) -> list[int] | None:
    path = Path(model_dir) / KEPT_TOKEN_IDS_FILE
    if not path.is_file():
        return None
    ids = json.loads(path.read_text())
    if not isinstance(ids, list) or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ModelLoadError(f"{path} must be a JSON list of non-negative token ids (index = this model's "
                             f"id, value = the root model's id)")
    return ids


def teacher_token_map(student_dir: Path, teacher_dir: Path, student_tok, teacher_tok,
                      sample_texts: Sequence[str]) -> torch.Tensor | None:
    """Student id -> teacher id as a LongTensor, or None when both use the same tokenizer.

    Raises ModelLoadError when the student is neither a vocabulary-trimmed descendant of the teacher
    nor tokenises like it."""
    student_root = read_kept_token_ids(student_dir)
    teacher_root = read_kept_token_ids(teacher_dir)
    if student_root == teacher_root:  # both untrimmed, or trimmed identically
        _check_same_tokenizer(student_tok, teacher_tok, sample_texts, student_dir, teacher_dir)
        return None
    if student_root is None:
        raise ModelLoadError(f"the teacher {teacher_dir} has a trimmed vocabulary but the student {student_dir} "
                             f"does not; distil from an untrimmed teacher or trim the student first")
    if teacher_root is None:
        mapping = student_root
    else:
        root_to_teacher = {root: t for t, root in enumerate(teacher_root)}
        missing = [s for s, root in enumerate(student_root) if root not in root_to_teacher]
        if missing:
            raise ModelLoadError(f"the student keeps {len(missing)} tokens that the trimmed teacher {teacher_dir} "
                                 f"lacks (first: student id {missing[0]}); use a teacher whose vocabulary "
                                 f"contains the student's")
        mapping = [root_to_teacher[root] for root in student_root]
    _check_mapping(mapping, student_tok, teacher_tok, student_dir, teacher_dir)
    return torch.tensor(mapping, dtype=torch.long)


def _check_mapping(mapping: list[int], student_tok, teacher_tok, student_dir, teacher_dir) -> None:
    """The mapped ids must name the same token strings in both vocabularies."""
    if len(mapping) != len(student_tok):
        raise ModelLoadError(f"{Path(student_dir) / KEPT_TOKEN_IDS_FILE} has {len(mapping)} entries but the "
                             f"student's tokenizer has {len(student_tok)} tokens; rebuild the trimmed model")
    if max(mapping) >= len(teacher_tok):
        raise ModelLoadError(f"{Path(student_dir) / KEPT_TOKEN_IDS_FILE} refers to teacher id {max(mapping)} "
                             f"but {teacher_dir} has {len(teacher_tok)} tokens; is this the right teacher?")
    student_tokens = student_tok.convert_ids_to_tokens(list(range(len(mapping))))
    teacher_tokens = teacher_tok.convert_ids_to_tokens(mapping)
    for s, (a, b) in enumerate(zip(student_tokens, teacher_tokens)):
        if a != b:
            raise ModelLoadError(f"{KEPT_TOKEN_IDS_FILE} maps student token {s} {a!r} to teacher token "
                                 f"{mapping[s]} {b!r}: {student_dir} is not a vocabulary-trimmed descendant "
                                 f"of {teacher_dir}")


def _check_same_tokenizer(student_tok, teacher_tok, sample_texts, student_dir, teacher_dir) -> None:
    fix = (f"distil with the teacher's tokenizer, or give the student a {KEPT_TOKEN_IDS_FILE} "
           f"(student id -> teacher id) if its vocabulary was trimmed from the teacher's")
    if student_tok.get_vocab() != teacher_tok.get_vocab():
        raise ModelLoadError(f"the tokenizers of {student_dir} and {teacher_dir} have different vocabularies; {fix}")
    texts = [t for t in sample_texts[:TOKENIZER_CHECK_TEXTS] if t.strip()]
    if texts and student_tok(texts)["input_ids"] != teacher_tok(texts)["input_ids"]:
        raise ModelLoadError(f"the tokenizers of {student_dir} and {teacher_dir} split the same text differently; {fix}")


def write_hidden_map(model_dir: Path, teacher_from_student: torch.Tensor) -> None:
    save_file({"teacher_from_student": teacher_from_student.detach().float().contiguous()},
              str(Path(model_dir) / HIDDEN_MAP_FILE))


def read_hidden_map(model_dir: Path) -> torch.Tensor | None:
    """The hidden stage's map of a model that came straight out of it (HIDDEN_MAP_FILE), or None."""
    path = Path(model_dir) / HIDDEN_MAP_FILE
    return load_file(str(path))["teacher_from_student"] if path.is_file() else None
