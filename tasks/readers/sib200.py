"""SIB-200 topic classification TSV: header `index_id<TAB>category<TAB>text`; labels may hold a
slash (`science/technology`), and the text is not quoted (it may contain quotes)."""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import malformed, numbered_lines
from tasks.types import SequenceExample

HEADER = ["index_id", "category", "text"]


def read(path: Path) -> list[SequenceExample]:
    examples: list[SequenceExample] = []
    for lineno, line in numbered_lines(path):
        fields = line.split("\t")
        if lineno == 1:
            if fields != HEADER:
                raise malformed(path, lineno, f"expected the header {'<TAB>'.join(HEADER)!r}, found {line[:60]!r}")
            continue
        if not line.strip():
            continue
        if len(fields) != 3 or not fields[1].strip() or not fields[2].strip():
            raise malformed(path, lineno,
                            f"expected 3 tab-separated fields (index_id, category, text), found {len(fields)}")
        examples.append(SequenceExample(text=fields[2].strip(), label=fields[1].strip()))
    return examples
