"""JSON records configured by field names: a JSON list of objects (`[{...}, {...}]`, a common shape
for tweet corpora) or JSON lines (one object per line), told apart by the first character.

Options (from the task YAML): `text_field` and `label_field` for a sequence task, or `tokens_field`
and `tags_field` for a token task; a dotted name reaches into nested objects (`user.text`);
`label_map` renames labels (a label outside it is an error, as in headerless_csv). A record that
lacks a field, or has an empty one, is an error naming the file and its line (JSON lines) or its
index in the list.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from core.errors import ConfigError
from tasks.readers._lines import malformed, read_text
from tasks.types import Example, SequenceExample, TokenExample


def _records(path: Path) -> Iterator[tuple[str, int, Any]]:
    """(where, number, record): 'line' and the line number for JSON lines, 'record' and the index."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise malformed(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
        for i, record in enumerate(data):
            yield "record", i, record
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield "line", lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise malformed(path, lineno, f"invalid JSON: {exc.msg}") from None


def _field(record: Any, name: str) -> Any:
    value = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def read(path: Path, *, text_field: str | None = None, label_field: str | None = None,
         tokens_field: str | None = None, tags_field: str | None = None,
         label_map: dict[str, str] | None = None) -> list[Example]:
    token_task = tokens_field is not None or tags_field is not None
    if token_task and not (tokens_field and tags_field):
        raise ConfigError("json_records: a token task needs both tokens_field and tags_field")
    if not token_task and not (text_field and label_field):
        raise ConfigError("json_records: set text_field and label_field (sequence task) or "
                          "tokens_field and tags_field (token task)")
    fields = (tokens_field, tags_field) if token_task else (text_field, label_field)
    examples: list[Example] = []
    for where, n, record in _records(path):
        def bad(problem: str):
            return malformed(path, n if where == "line" else f"record {n}", problem)  # type: ignore[arg-type]
        first, second = (_field(record, f) for f in fields)
        missing = [f for f, v in zip(fields, (first, second)) if v in (None, "", [])]
        if missing:
            raise bad(f"no value for {', '.join(missing)} (fields: {', '.join(fields)})")
        if token_task:
            if not (isinstance(first, list) and isinstance(second, list)) or len(first) != len(second):
                raise bad(f"{tokens_field} and {tags_field} must be lists of the same length")
            examples.append(TokenExample(tokens=tuple(str(t) for t in first), tags=tuple(str(t) for t in second)))
            continue
        label = str(second).strip()
        if label_map is not None:
            if label not in label_map:
                raise bad(f"unknown label {label!r}; expected one of {sorted(label_map)}")
            label = label_map[label]
        examples.append(SequenceExample(text=str(first).strip(), label=label))
    return examples
