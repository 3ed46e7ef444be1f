"""Line access shared by the readers: UTF-8 with a clear error, 1-based line numbers."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from core.errors import DataError
from tasks.types import SequenceExample


def malformed(path: Path, lineno: int, problem: str) -> DataError:
    return DataError(f"{path}:{lineno}: {problem} (fix the file, or restore a verified copy: "
                     f"`harness data verify` / `harness data fetch --repair`)")


def read_text(path: Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise malformed(path, lineno, "invalid UTF-8") from None


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its line break) for every line of the file."""
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        yield i, line


def blank_separated(path: Path, *, comment: str | None = None
                    ) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """Blocks of non-blank lines separated by blank lines: (first line number, [(lineno, line)]).

    Lines starting with `comment` (when given) are dropped from the blocks but still end nothing.
    """
    block: list[tuple[int, str]] = []
    start = 0
    for lineno, line in numbered_lines(path):
        if not line.strip():
            if block:
                yield start, block
                block = []
            continue
        if comment is not None and line.startswith(comment):
            continue
        if not block:
            start = lineno
        block.append((lineno, line))
    if block:
        yield start, block


def headed_tsv(path: Path, header: list[str], text_column: str, label_column: str) -> list[SequenceExample]:
    """A TSV with a fixed header line and no quoting (a quote is part of the text): one example per
    non-blank line, every field required to be present and non-empty."""
    text_i, label_i = header.index(text_column), header.index(label_column)
    names = ", ".join(header)
    examples: list[SequenceExample] = []
    for lineno, line in numbered_lines(path):
        fields = line.split("\t")
        if lineno == 1:
            if fields != header:
                raise malformed(path, lineno, f"expected the header {'<TAB>'.join(header)!r}, found {line[:60]!r}")
            continue
        if not line.strip():
            continue
        if len(fields) != len(header) or not fields[text_i].strip() or not fields[label_i].strip():
            raise malformed(path, lineno,
                            f"expected {len(header)} tab-separated fields ({names}), found {len(fields)}")
        examples.append(SequenceExample(text=fields[text_i].strip(), label=fields[label_i].strip()))
    return examples
