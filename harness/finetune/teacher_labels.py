"""Task-specific distillation as a fine-tuning protocol option (`protocol: {teacher_labels: ...}`).

The teacher fine-tunes on the task as usual; at the end of its run, its best checkpoint labels a
fixed sample of the language's *unlabeled* raw text (never any task's dev or test text) with its
logits, stored beside the stage cache. A compressed point fine-tuned under the same protocol and
seed then learns from the gold training examples (cross-entropy) and from those soft labels
(temperature-scaled KL, batches of unlabeled lines interleaved with the gold ones).

Sequence tasks (topic, sentiment) store one row of logits per line. Token tasks (NER, POS) split
each line into words (`split_words`: runs of letters and digits, and each punctuation mark alone, as
the token datasets are split) and store one row per word, the logits at the word's first sub-word,
so a student with another tokenizer learns the same per-word distributions; a word the teacher
could not place (cut off by max_length) has a NaN row and teaches nothing. The option is part of the
protocol hash: these runs form their own protocol family and are never mixed with plain fine-tuning.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.errors import DataError
from core.paths import cache_root
from tasks.text import text_fingerprint

LABELS_FORMAT = 1
_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """A raw line as a token task's words: runs of letters and digits, and each other non-space
    character alone ('Bratislava, 2019.' -> ['Bratislava', ',', '2019', '.'])."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class LabelJob:
    """What one run does with teacher labels: 'write' them (the teacher's run) or 'read' them
    (a student's run), at `path`, over `texts`."""
    mode: str                   # 'write' | 'read'
    path: Path
    texts: tuple[str, ...]
    weight: float
    temperature: float


def unlabeled_lines(language: str, data_dir: Path, n: int, seed: int) -> list[str]:
    """A fixed sample of `n` lines of the language's raw text (deduplicated, with every task's
    dev and test text removed), the same for every model and seed."""
    from tasks.text import training_texts

    texts = [t for t in training_texts(language, data_dir, include_raw=True, include_task_train=False)
             if t.strip()]
    if not texts:
        raise DataError(f"teacher_labels needs unlabeled raw text for {language}, and the data catalogue "
                        "has none; drop teacher_labels for this language or add raw text (harness data add)")
    random.Random(f"teacher-labels-{seed}").shuffle(texts)
    return texts[:n]


def labels_path(teacher_key: str, task: str, language: str, seed: int, protocol_hash: str,
                root: Path | None = None) -> Path:
    name = f"{teacher_key}--{task}--{language}--seed{seed}--{protocol_hash}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return (root or cache_root() / "teacher-labels") / f"{digest}.pt"


def save_labels(path: Path, logits, labels: list[str], texts, meta: dict) -> None:
    """`logits`: a (lines, labels) tensor (sequence tasks), or a list of one (words, labels)
    tensor per line (token tasks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    stored = logits.float().cpu() if torch.is_tensor(logits) else [x.float().cpu() for x in logits]
    torch.save({"format": LABELS_FORMAT, "logits": stored, "labels": list(labels),
                "texts": text_fingerprint(texts), "meta": meta}, tmp)
    tmp.replace(path)


def load_labels(path: Path, labels: list[str], texts):
    """The teacher's logits for `texts` (as `save_labels` took them), checked against the label
    order and the texts."""
    if not path.is_file():
        raise DataError(f"no teacher labels at {path}: the teacher's run of this task, language, seed "
                        "and protocol must finish first (harness eval runs teachers before compressed points)")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob.get("format") != LABELS_FORMAT or blob["labels"] != list(labels) or blob["texts"] != text_fingerprint(texts):
        raise DataError(f"teacher labels at {path} were made for other labels or text; delete the file and "
                        "run the teacher's run again (harness eval --retry-failed after removing its row)")
    return blob["logits"]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's distillation loss: T^2 * KL(teacher || student) on temperature-softened
    distributions, averaged over the batch (fp32)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, dim=-1), F.softmax(teacher_logits.float() / t, dim=-1),
                    reduction="batchmean") * (t * t)


def word_logits(logits: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """One line's (words, labels) rows from its (length, labels) logits: the row at each word's
    first sub-word, NaN for a word with no position."""
    out = torch.full((len(positions), logits.shape[-1]), float("nan"))
    placed = [w for w, p in enumerate(positions) if p >= 0]
    if placed:
        out[placed] = logits[[positions[w] for w in placed]].float().cpu()
    return out


def word_targets(teacher_rows: torch.Tensor, positions: list[int]) -> tuple[list[int], torch.Tensor] | None:
    """Where a student learns one line's per-word soft labels: (its positions of the words both
    models placed, the teacher's rows for them), or None where there is no such word."""
    unplaced = torch.isnan(teacher_rows[:, 0]).tolist()  # one pass, not a tensor read per word
    keep = [w for w, p in enumerate(positions) if p >= 0 and w < len(unplaced) and not unplaced[w]]
    if not keep:
        return None
    return [positions[w] for w in keep], teacher_rows[keep]


def token_kd_loss(logits: torch.Tensor, targets: list[tuple[list[int], torch.Tensor]],
                  temperature: float) -> torch.Tensor:
    """`kd_loss` over the words of a batch: `logits` (batch, length, labels), `targets` one
    `word_targets` pair per row; every word weighs the same."""
    rows = [r for r, (pos, _) in enumerate(targets) for _ in pos]
    cols = [p for pos, _ in targets for p in pos]
    teacher = torch.cat([t for _, t in targets]).to(logits.device)
    return kd_loss(logits[rows, cols], teacher, temperature)


def interleave(gold: list[list[int]], unlabeled: list[list[int]], rng: random.Random) -> list[tuple[str, list[int]]]:
    """One epoch's batches: the gold batches and the unlabeled ones in a seeded random order."""
    order = [("gold", b) for b in gold] + [("teacher", b) for b in unlabeled]
    rng.shuffle(order)
    return order
