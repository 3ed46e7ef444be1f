"""Target-language training text for the stages: the data catalogue, local files, and (for a
user with internet) Hugging Face datasets such as Wikipedia, streamed with a line cap.

Only training text: the catalogue's `tasks.text.training_texts` (raw text and task train splits,
never dev or test); lines identical to a dev line of the language are dropped from the other
sources too. The fingerprint that keys the stage cache is computed without downloading: from the
content of local text, and from the resolved specification (dataset, config, revision, split,
column, cap) of Hugging Face sources, so pin `revision` to make those keys reproducible.
"""
from __future__ import annotations

import hashlib
import json
import random
from functools import cached_property
from pathlib import Path

from compression.config import FilesSource, HFSource, TextConfig
from core.errors import ConfigError, DataError, UserError
from core.progress import bar
from tasks import text as tasks_text
from tasks.languages import get_language


def fingerprint(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:20]


def _placeholders(language: str) -> dict[str, str]:
    values = {"language": language}
    try:
        lang = get_language(language)
        values.update({k: v for k, v in {"iso639_3": lang.iso639_3, "wikipedia": lang.wikipedia,
                                           "cc100": lang.cc100}.items() if v})
    except Exception:  # noqa: BLE001 - unknown language: only {language} is available
        pass
    return values


def _fill(value, language: str, field: str):
    """Resolve a per-language mapping or a template with {language}/{wikipedia}/... placeholders."""
    if value is None:
        return None
    if isinstance(value, dict):
        if language not in value:
            raise ConfigError(f"compression.text.sources: {field} has no entry for {language!r}; "
                              f"it names {sorted(value)}")
        value = value[language]
    if isinstance(value, list):
        return [_fill(v, language, field) for v in value]
    try:
        return value.format(**_placeholders(language))
    except KeyError as err:
        raise ConfigError(f"compression.text.sources: {field} {value!r} uses {{{err.args[0]}}}, which "
                          f"{language!r} does not define; known: {sorted(_placeholders(language))}") from None


def _resolve_path(path: str, data_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and data_dir is not None and (Path(data_dir) / p).exists():
        return Path(data_dir) / p
    return p


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"text file {path} does not exist (compression.text.sources)")
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"text file {path} is not UTF-8") from None


def _hf_spec(source: HFSource, language: str, data_dir: Path | None) -> dict:
    data_files = _fill(source.data_files, language, "data_files")
    local_digest = None
    if data_files is not None:
        files = data_files if isinstance(data_files, list) else [data_files]
        resolved = [_resolve_path(f, data_dir) for f in files]
        if all(p.is_file() for p in resolved):  # local files: key on their content
            data_files = [str(p) for p in resolved]
            h = hashlib.sha256()
            for p in resolved:
                h.update(p.read_bytes())
            local_digest = h.hexdigest()[:20]
    return {"path": source.path, "name": _fill(source.name, language, "name"), "data_files": data_files,
            "split": source.split, "column": source.column, "revision": source.revision,
            "max_lines": source.max_lines, "min_chars": source.min_chars, "local_digest": local_digest}


def hf_lines(spec: dict) -> list[str]:
    """Stream a dataset split and return up to max_lines lines of at least min_chars characters."""
    import datasets
    kwargs = {k: spec[k] for k in ("name", "data_files", "revision") if spec.get(k) is not None}
    try:
        stream = datasets.load_dataset(spec["path"], split=spec["split"], streaming=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - network, missing dataset or config
        raise DataError(f"Hugging Face dataset {spec['path']!r} ({spec.get('name')}) did not load: "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    out: list[str] = []
    with bar(total=spec["max_lines"], desc=f"text: {spec['path']}", unit="line") as progress:
        for row in stream:
            if spec["column"] not in row:
                raise DataError(f"dataset {spec['path']!r} has no column {spec['column']!r}; "
                                f"columns: {sorted(row)}")
            for line in str(row[spec["column"]]).splitlines():
                line = line.strip()
                if len(line) >= spec["min_chars"]:
                    out.append(line)
                    progress.update(1)
                    if len(out) >= spec["max_lines"]:
                        return out
    return out


class LanguageText:
    """The training and dev text of one language, loaded on first use."""

    def __init__(self, cfg: TextConfig, language: str, data_dir: Path | None, seed: int):
        self.cfg, self.language, self.seed = cfg, language, seed
        self.data_dir = Path(data_dir) if data_dir is not None else None

    def _sources(self, kind):
        return [s for s in self.cfg.sources if isinstance(s, kind)
                and (getattr(s, "languages", None) is None or self.language in s.languages)]

    @cached_property
    def _local(self) -> list[str]:
        texts: list[str] = []
        if self.cfg.catalogue:
            if self.data_dir is None:
                raise DataError("compression.text.catalogue needs the data directory (--data-dir or "
                                "$HARNESS_DATA_DIR), or set catalogue: false and name text sources")
            texts += tasks_text.training_texts(
                self.language, self.data_dir, include_raw=self.cfg.include_raw,
                include_task_train=self.cfg.include_task_train, tasks=self.cfg.tasks)
        for source in self._sources(FilesSource):
            for path in source.files.get(self.language, []):
                texts += _read_lines(_resolve_path(path, self.data_dir))
        return texts

    @cached_property
    def _hf_specs(self) -> list[dict]:
        return [_hf_spec(s, self.language, self.data_dir) for s in self._sources(HFSource)]

    @property
    def is_local(self) -> bool:
        """True when reading the text needs no download (no Hugging Face source)."""
        return not self._sources(HFSource)

    @cached_property
    def fingerprint(self) -> str:
        """Cheap: local text by content, Hugging Face sources by their resolved specification."""
        spec = {"local": fingerprint(self._local), "hf": self._hf_specs, "dev": fingerprint(self.dev()),
                "max_lines": self.cfg.max_lines, "seed": self.seed if self.cfg.max_lines else None}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]

    def dev(self) -> list[str]:
        """Dev text of the language (reports only; never trained on): the catalogue's and that
        of `dev` files; [] when there is none."""
        if "_dev" not in self.__dict__:
            dev: list[str] = []
            if self.data_dir is not None:
                try:
                    dev = list(tasks_text.dev_texts(self.language, self.data_dir))
                except UserError:  # no catalogue module, a language it does not know, no files
                    dev = []
            for source in self._sources(FilesSource):
                for path in (source.dev or {}).get(self.language, []):
                    dev += _read_lines(_resolve_path(path, self.data_dir))
            self._dev = dev
        return self._dev

    @cached_property
    def _texts(self) -> list[str]:
        lines = list(self._local)
        for spec in self._hf_specs:
            lines += hf_lines(spec)
        held_out = set(self.dev())
        lines = [t for t in dict.fromkeys(line.strip() for line in lines) if t and t not in held_out]
        if not lines:
            raise DataError(f"no training text for {self.language!r}: check compression.text "
                            "(catalogue, sources) and the data directory")
        if self.cfg.max_lines and len(lines) > self.cfg.max_lines:
            keep = sorted(random.Random(self.seed).sample(range(len(lines)), self.cfg.max_lines))
            lines = [lines[i] for i in keep]
        return lines

    def texts(self) -> list[str]:
        return self._texts

    def inputs(self) -> dict:
        """Which text the stages read, named without reading it: the catalogue datasets whose raw or
        task training text enters, local files and Hugging Face sources. Recorded in the manifest
        (`text`) so that a published model can name the data it was built from and its licences."""
        return text_inputs(self.cfg, self.language)

    def summary(self) -> dict:
        return {"language": self.language, "lines": len(self._texts),
                "characters": sum(len(t) for t in self._texts), "fingerprint": self.fingerprint}


def text_inputs(cfg: TextConfig, language: str) -> dict:
    """The description `LanguageText.inputs` records (see there)."""
    datasets: set[str] = set()
    if cfg.catalogue:
        from tasks.text import text_required_files
        for e in text_required_files(language):
            if e.task == "raw" and cfg.include_raw:
                datasets.add(e.dataset)
            elif e.task != "raw" and cfg.include_task_train and (cfg.tasks is None or e.task in cfg.tasks):
                datasets.add(e.dataset)
    sources = []
    for s in cfg.sources:
        if isinstance(s, FilesSource):
            if language in s.files:
                sources.append({"kind": "files", "files": list(s.files[language])})
        elif s.languages is None or language in s.languages:
            sources.append({"kind": "hf", "path": s.path, "name": _fill(s.name, language, "name"),
                            "revision": s.revision, "split": s.split, "max_lines": s.max_lines})
    return {"catalogue_datasets": sorted(datasets), "sources": sources, "max_lines": cfg.max_lines}
