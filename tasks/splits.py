"""Deriving missing splits from a published one, deterministically.

Where a dataset lacks a split (UD treebanks without train, a test-only treebank, a corpus with no
split at all), the task YAML declares a derivation: cut the `from` split into the `into` splits with
the given ratios and seed. Assignment is by a seeded sha256 of each example's content (ties by
position), so it is the same on every machine and Python hash seed and does not depend on the order
of the file; sequence tasks are stratified by label. Each derived split keeps the file order.
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

from core.errors import DataError
from tasks.types import Example, SequenceExample, TokenExample

SOURCE_NAMES = {"all": "the unsplit data", "train": "the published train split",
                "dev": "the published dev split", "test": "the published test split"}


def _content(example: Example) -> str:
    if isinstance(example, TokenExample):
        return " ".join(example.tokens) + "\x1f" + " ".join(example.tags)
    return example.text + "\x1f" + example.label


def _order(examples: Sequence[Example], indices: Sequence[int], seed: int) -> list[int]:
    key = {i: hashlib.sha256(f"{seed}\x1e{_content(examples[i])}".encode("utf-8")).hexdigest()
           for i in indices}
    return sorted(indices, key=lambda i: (key[i], i))


def _cuts(n: int, ratios: Sequence[float]) -> list[int]:
    """Boundaries of the parts of n items for the ratios (cumulative rounding, last = n)."""
    bounds, acc = [], 0.0
    for r in ratios[:-1]:
        acc += r
        bounds.append(min(n, math.floor(n * acc + 0.5)))
    return [0, *bounds, n]


def split_examples(examples: Sequence[Example], ratios: Sequence[float], seed: int,
                   stratify: bool = True) -> list[list[Example]]:
    """Cut `examples` into len(ratios) parts (stratified by label for SequenceExamples)."""
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        label = ex.label if stratify and isinstance(ex, SequenceExample) else ""
        groups.setdefault(label, []).append(i)
    parts: list[list[int]] = [[] for _ in ratios]
    for label in sorted(groups):
        ordered = _order(examples, groups[label], seed)
        bounds = _cuts(len(ordered), ratios)
        for p in range(len(ratios)):
            parts[p].extend(ordered[bounds[p]:bounds[p + 1]])
    return [[examples[i] for i in sorted(idx)] for idx in parts]


def describe(source: str, into: Sequence[str], ratios: Sequence[float], seed: int, n_source: int,
             unit: str, stratified: bool) -> str:
    """A human-readable derivation, e.g. 'train/dev cut 80/20 from the published dev split ...'."""
    pct = "/".join(f"{r * 100:g}" for r in ratios)
    kept = [s for s in ("train", "dev", "test") if s not in into]
    text = (f"{'/'.join(into)} cut {pct}{', stratified by label,' if stratified else ''} from "
            f"{SOURCE_NAMES[source]} ({n_source} {unit}), seed {seed}")
    if kept:
        text += f"; {'/'.join(kept)} as published"
    return text


def derive(published: dict[str, list[Example]], source: str, into: Sequence[str],
           ratios: Sequence[float], seed: int, stratify: bool = True
           ) -> tuple[dict[str, list[Example]], str]:
    """The published splits with `source` replaced by the derived `into` splits, and a description."""
    pool = published[source]
    if len(pool) < len(into):
        raise DataError(f"cannot derive {'/'.join(into)} from {len(pool)} example(s) of the {source} split")
    is_token = bool(pool) and isinstance(pool[0], TokenExample)
    stratified = stratify and not is_token
    parts = split_examples(pool, ratios, seed, stratify=stratified)
    out = {k: v for k, v in published.items() if k != source}
    out.update(dict(zip(into, parts)))
    unit = "sentences" if is_token else "examples"
    return out, describe(source, into, ratios, seed, len(pool), unit, stratified)
