"""Universal NER `.iob2`: tab-separated `id token tag - -` (the last two columns are unused),
`# sent_id` / `# text` comments, a blank line between sentences."""
from __future__ import annotations

from pathlib import Path

from tasks.readers._lines import blank_separated, malformed
from tasks.types import TokenExample


def read(path: Path) -> list[TokenExample]:
    sentences: list[TokenExample] = []
    for _start, block in blank_separated(path, comment="#"):
        tokens: list[str] = []
        tags: list[str] = []
        for lineno, line in block:
            cols = line.split("\t")
            if len(cols) < 3:
                raise malformed(path, lineno, f"expected tab-separated `id token tag` columns, found {len(cols)}")
            if cols[0] != str(len(tokens) + 1):
                raise malformed(path, lineno, f"token id {cols[0]!r} out of sequence (expected {len(tokens) + 1})")
            if not cols[2]:
                raise malformed(path, lineno, "empty tag")
            tokens.append(cols[1])
            tags.append(cols[2])
        sentences.append(TokenExample(tuple(tokens), tuple(tags)))
    return sentences
