"""Readers for the datasets' native formats, one module per format.

A reader is `read(path: Path, **options) -> list[SequenceExample | TokenExample]`; it raises
`DataError` naming the file and line of anything malformed. Readers are registered lazily by name;
a task YAML names its reader (and options), so a new format is one module plus one line here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.registry import Registry

from tasks.types import Example

Reader = Callable[..., list[Example]]

READERS: Registry[Reader] = Registry("reader")
READERS.register("sib200_tsv", "tasks.readers.sib200:read")
READERS.register("conllu_upos", "tasks.readers.conllu:read")
READERS.register("two_column", "tasks.readers.two_column:read")
READERS.register("uner_iob2", "tasks.readers.iob2:read")
READERS.register("afrisenti_tsv", "tasks.readers.afrisenti:read")
READERS.register("headerless_csv", "tasks.readers.headerless_csv:read")
READERS.register("json_records", "tasks.readers.json_records:read")


def read_file(reader: str, path: Path, **options) -> list[Example]:
    return READERS.get(reader)(Path(path), **options)
