"""Two whitespace-separated columns `token TAG`, one token per line, a blank line between
sentences: MasakhaNER 1.0/2.0, MasakhaPOS, WikiANN (masakhane-ner copy) and WikiGoldSK.
No comment syntax: a token may itself be `#`."""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import blank_separated, malformed
from tasks.types import TokenExample


def read(path: Path) -> list[TokenExample]:
    sentences: list[TokenExample] = []
    for _start, block in blank_separated(path):
        tokens: list[str] = []
        tags: list[str] = []
        for lineno, line in block:
            fields = line.split()
            if len(fields) != 2:
                raise malformed(path, lineno, f"expected 2 space-separated columns (token TAG), found {len(fields)}")
            tokens.append(fields[0])
            tags.append(fields[1])
        sentences.append(TokenExample(tuple(tokens), tuple(tags)))
    return sentences
