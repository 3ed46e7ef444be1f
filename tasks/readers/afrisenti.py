"""AfriSenti (SemEval-2023 Task 12) TSV: header `tweet<TAB>label`; tweets are not quoted
(a leading `"` is part of the text), so no CSV quoting rules apply."""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import headed_tsv
from tasks.types import SequenceExample

HEADER = ["tweet", "label"]


def read(path: Path) -> list[SequenceExample]:
    return headed_tsv(path, HEADER, text_column="tweet", label_column="label")
