"""SIB-200 topic classification TSV: header `index_id<TAB>category<TAB>text`; labels may hold a
slash (`science/technology`), and the text is not quoted (it may contain quotes)."""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import headed_tsv
from tasks.types import SequenceExample

HEADER = ["index_id", "category", "text"]


def read(path: Path) -> list[SequenceExample]:
    return headed_tsv(path, HEADER, text_column="text", label_column="category")
