"""The examples and the loaded data of one task in one language."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

TaskKind = Literal["sequence", "token"]
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SequenceExample:
    """One text with one label (topic, sentiment)."""
    text: str
    label: str


@dataclass(frozen=True)
class TokenExample:
    """One sentence as words with one tag per word (NER, POS)."""
    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    def __post_init__(self):
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


Example = Union[SequenceExample, TokenExample]


@dataclass
class TaskData:
    """The train/dev/test examples of a task in one language, with where they came from.

    `derived` is True when a split was cut from another published split (see `derivation`);
    scores on such data must be stored with the flag and never mixed with standard ones.
    `files` maps each split to the data file (relative to the data directory) it was read from.
    """
    task: str
    language: str
    dataset: str
    kind: TaskKind
    labels: list[str]
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    derived: bool = False
    derivation: str | None = None
    license: str = ""
    files: dict[str, str] = field(default_factory=dict)
    citation: str = ""

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in SPLITS}
