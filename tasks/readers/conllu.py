"""Universal Dependencies CoNLL-U, read as words with their UPOS tag (column 4).

Only syntactic word lines count: comment lines, multi-word token ranges (`3-4`) and empty nodes
(`5.1`) are skipped, so a sentence is the sequence of words UD scores UPOS on.
"""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import blank_separated, malformed
from tasks.types import TokenExample


def read(path: Path) -> list[TokenExample]:
    sentences: list[TokenExample] = []
    for start, block in blank_separated(path, comment="#"):
        words: list[str] = []
        tags: list[str] = []
        for lineno, line in block:
            cols = line.split("\t")
            if len(cols) != 10:
                raise malformed(path, lineno, f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}")
            wid = cols[0]
            if "-" in wid or "." in wid:  # multi-word token range or empty node
                continue
            if not wid.isdigit():
                raise malformed(path, lineno, f"bad word id {wid!r}")
            if int(wid) != len(words) + 1:
                raise malformed(path, lineno, f"word id {wid} out of sequence (expected {len(words) + 1})")
            if cols[3] in ("", "_"):
                raise malformed(path, lineno, "missing UPOS tag in column 4")
            words.append(cols[1])
            tags.append(cols[3])
        if not words:
            raise malformed(path, start, "sentence without word lines")
        sentences.append(TokenExample(tuple(words), tuple(tags)))
    return sentences
