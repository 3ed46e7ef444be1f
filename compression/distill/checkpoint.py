"""Checkpoints of a distillation run: one file, written atomically, resumable only by the same run.

The file holds the student's and the loss modules' weights, optimizer and scheduler state, every
process's RNG state, the step and the counters. A run is identified by a fingerprint of its
arguments (config, texts, the two model directories, world size); a checkpoint with another
fingerprint is refused rather than silently continued.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from core.errors import UserError

CHECKPOINT_FILE = "checkpoint.pt"
# Settings that change how often things are written, not what is computed.
NON_SEMANTIC_FIELDS = {"checkpoint_every"}
MODEL_FILES_FINGERPRINTED = ("config.json", "model.safetensors.index.json", "kept_token_ids.json",
                             "tokenizer.json")


def default_checkpoint_dir(out_dir: Path) -> Path:
    """<out_dir>.ckpt beside the output directory."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.ckpt"


def _model_dir_digest(h: "hashlib._Hash", model_dir: Path) -> None:
    for name in MODEL_FILES_FINGERPRINTED:
        path = model_dir / name
        if path.is_file():
            h.update(name.encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    weights = model_dir / "model.safetensors"
    if weights.is_file():  # hashing gigabytes would cost more than it protects; size and header suffice
        with weights.open("rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            h.update(f.read(min(header_len, 1 << 24)))
        h.update(str(weights.stat().st_size).encode())


def run_fingerprint(config: dict[str, Any], texts: Sequence[str], student_dir: Path, teacher_dir: Path,
                    world_size: int) -> str:
    h = hashlib.sha256()
    semantic = {k: v for k, v in config.items() if k not in NON_SEMANTIC_FIELDS}
    h.update(json.dumps(semantic, sort_keys=True, default=str).encode())
    h.update(str(world_size).encode())
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    for model_dir in (student_dir, teacher_dir):
        _model_dir_digest(h, Path(model_dir))
    return h.hexdigest()


def rng_state() -> dict[str, torch.Tensor]:
    """This process's torch RNG state (dropout draws from it)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(checkpoint_dir: Path, state: dict[str, Any]) -> Path:
    """Write `state` to <dir>/checkpoint.pt through a temporary file and an atomic rename."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / CHECKPOINT_FILE
    tmp = checkpoint_dir / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def load_checkpoint(checkpoint_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state of this run, or None when there is none. A checkpoint of another run is an error."""
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which and how to get past it
        raise UserError(f"cannot read the distillation checkpoint {path} ({e}); delete it to start over") from e
    if state.get("fingerprint") != fingerprint:
        raise UserError(f"the checkpoint {path} belongs to a different distillation run (config, texts or "
                        f"models differ); delete it to start over, or pass another checkpoint directory")
    return state


def remove_checkpoint(checkpoint_dir: Path) -> None:
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    path.unlink(missing_ok=True)
    try:
        Path(checkpoint_dir).rmdir()
    except OSError:
        pass  # not empty or already gone: leave it
