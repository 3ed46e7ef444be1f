"""AfriSenti (SemEval-2023 Task 12) TSV: header `tweet<TAB>label`; tweets are not quoted
(a leading `"` is part of the text), so no CSV quoting rules apply."""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import malformed, numbered_lines
from tasks.types import SequenceExample

HEADER = ["tweet", "label"]


def read(path: Path) -> list[SequenceExample]:
    examples: list[SequenceExample] = []
    for lineno, line in numbered_lines(path):
        fields = line.split("\t")
        if lineno == 1:
            if fields != HEADER:
                raise malformed(path, lineno, f"expected the header 'tweet<TAB>label', found {line[:60]!r}")
            continue
        if not line.strip():
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise malformed(path, lineno, f"expected 2 tab-separated fields (tweet, label), found {len(fields)}")
        examples.append(SequenceExample(text=fields[0].strip(), label=fields[1].strip()))
    return examples
