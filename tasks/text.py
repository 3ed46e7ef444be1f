"""Target-language text for compression (vocabulary counts, distillation, pruning calibration).

`training_texts` is the language's raw text (tasks' catalogue files under raw/) plus the *train*
split texts of every task with data for the language (for a derived split, only the derived train
part), deduplicated in a fixed order. Dev and test text never enter: any line equal (case, spacing
and punctuation aside) to a dev or test text of any task of the language is dropped, which also
keeps SIB-200/FLORES test text out. `dev_texts` gives the dev texts, for coverage checks.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable, Sequence

from tasks.catalogue import entries_for
from tasks.fetch import check_files
from tasks.readers._lines import numbered_lines
from tasks.types import Example, TaskData, TokenExample

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def _text(example: Example) -> str:
    return " ".join(example.tokens) if isinstance(example, TokenExample) else example.text


def _norm(text: str) -> str:
    return _NON_WORD.sub("", text.lower())


def _dedup(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(t for t in (s.strip() for s in texts) if t))


def _task_data(language: str, data_dir: Path, tasks: Sequence[str] | None) -> list[TaskData]:
    from tasks.registry import get_task, load_task_data, task_names
    names = list(tasks) if tasks is not None else task_names()
    return [load_task_data(t, language, data_dir) for t in names if language in get_task(t).languages()]


def text_required_files(language: str) -> list:
    """The catalogue files `training_texts`/`dev_texts` read for a language (fetch them first)."""
    from tasks.registry import get_task, required_files, task_names
    files = {e.path: e for e in entries_for(language=language, task="raw")}
    for t in task_names():
        if language in get_task(t).languages():
            files.update((e.path, e) for e in required_files(t, language))
    return sorted(files.values(), key=lambda e: e.path)


def raw_texts(language: str, data_dir: Path) -> list[str]:
    """Lines of the language's raw/ files, in catalogue (path) order."""
    entries = entries_for(language=language, task="raw")
    check_files(entries, data_dir)
    return [line for e in entries for _, line in numbered_lines(Path(data_dir) / e.path)]


def training_texts(language: str, data_dir: str | Path, *, include_raw: bool = True,
                   include_task_train: bool = True, tasks: Sequence[str] | None = None) -> list[str]:
    """Raw text plus task train texts of `language`, without any dev/test text; deduplicated."""
    from tasks.languages import get_language
    get_language(language)
    data_dir = Path(data_dir)
    loaded = _task_data(language, data_dir, tasks)
    # every dev/test text of every task (not only those selected) stays out
    held_out = {_norm(_text(ex)) for td in (loaded if tasks is None else _task_data(language, data_dir, None))
                for ex in (*td.dev, *td.test)}
    texts: list[str] = []
    if include_raw:
        texts += raw_texts(language, data_dir)
    if include_task_train:
        texts += [_text(ex) for td in loaded for ex in td.train]
    return [t for t in _dedup(texts) if _norm(t) not in held_out]


def dev_texts(language: str, data_dir: str | Path, tasks: Sequence[str] | None = None) -> list[str]:
    """The dev-split texts of every task with data for `language` (deduplicated)."""
    return _dedup(_text(ex) for td in _task_data(language, Path(data_dir), tasks) for ex in td.dev)


def text_fingerprint(texts: Sequence[str]) -> str:
    """sha256 over the texts in order (length-prefixed, so boundaries count); a lone surrogate is
    digested as it is rather than refused."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()
