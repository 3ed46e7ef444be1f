"""Headerless CSV `label,text` with standard CSV quoting: the typology-crosslingual sentiment
files (`0`/`1`) and the Estonian Valence corpus (Estonian label names).

`label_map` (from the task YAML) renames the file's labels; a label outside it is an error, so a
file with an unexpected class cannot slip through as a new label.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from tasks.readers._lines import malformed, read_text
from tasks.types import SequenceExample


def read(path: Path, label_map: dict[str, str] | None = None) -> list[SequenceExample]:
    examples: list[SequenceExample] = []
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != 2 or not row[1].strip():
                raise malformed(path, lineno, f"expected 2 CSV fields (label, text), found {len(row)}")
            label = row[0].strip()
            if label_map is not None:
                if label not in label_map:
                    raise malformed(path, lineno, f"unknown label {label!r}; expected one of {sorted(label_map)}")
                label = label_map[label]
            examples.append(SequenceExample(text=row[1].strip(), label=label))
    except csv.Error as exc:
        raise malformed(path, reader.line_num, f"CSV error: {exc}") from None
    return examples
