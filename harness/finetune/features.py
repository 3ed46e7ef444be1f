"""Turning task examples into model inputs.

Sequence tasks: one label per text. Token tasks: one tag per word, placed on the word's first
sub-word; the other sub-words and the special tokens get -100 and are ignored by the loss and the
metrics. A word that gets no sub-word position (cut off by max_length, or a word the tokenizer turns
into nothing) is counted in `Encoded.unplaced_words`; at evaluation such a word is predicted with
the task's fallback tag, so it is never silently dropped from the metric.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from core.constants import IGNORE_INDEX


@dataclass
class Encoded:
    input_ids: list[list[int]]
    labels: list[int] | list[list[int]]          # per example, or per position (token tasks)
    word_positions: list[list[int]] = field(default_factory=list)  # token tasks: position of word i, -1 if none
    unplaced_words: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode_sequences(tokenizer, texts: Sequence[str], labels: Sequence[str],
                     label2id: dict[str, int], max_length: int) -> Encoded:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return Encoded(input_ids=[list(x) for x in enc["input_ids"]],
                   labels=[label2id[y] for y in labels])


def encode_words(tokenizer, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None,
                 label2id: dict[str, int], max_length: int) -> Encoded:
    """`tags` None: unlabeled words (every label ignored), for their positions alone."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("token classification needs a fast tokenizer (word_ids)")
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=True,
                    max_length=max_length)
    all_ids, all_labels, all_positions, unplaced = [], [], [], 0
    for i, words in enumerate(sentences):
        word_ids = enc.word_ids(i)
        labels = [IGNORE_INDEX] * len(word_ids)
        positions = [-1] * len(words)
        previous = None
        for pos, w in enumerate(word_ids):
            if w is not None and w != previous:
                if tags is not None:
                    labels[pos] = label2id[tags[i][w]]
                positions[w] = pos
            previous = w
        unplaced += sum(1 for p in positions if p < 0)
        all_ids.append(list(enc["input_ids"][i]))
        all_labels.append(labels)
        all_positions.append(positions)
    return Encoded(input_ids=all_ids, labels=all_labels, word_positions=all_positions,
                   unplaced_words=unplaced)
