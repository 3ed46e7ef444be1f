"""Task definitions as data: the typed shape of a tasks/definitions/*.yaml file and `TaskSpec`.

A task file names the task kind, its metrics, the datasets it draws on (with the reader of their
native format, or a Hugging Face source) and, per language, the dataset, the files per split and
optionally a derivation of missing splits. See tasks/definitions/topic.yaml for the smallest one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.errors import ConfigError, UserError
from core.model import StrictModel
from core.registry import unknown_name_message
from tasks.catalogue import dataset_info, load_catalogue
from tasks.languages import get_language, language_codes, unknown_language_message
from tasks.readers import READERS
from tasks.types import SPLITS

SplitName = Literal["train", "dev", "test"]
SourceSplit = Literal["train", "dev", "test", "all"]


class _Strict(StrictModel):
    model_config = ConfigDict(populate_by_name=True)


class Derivation(_Strict):
    """Cut the published `from` split into the `into` splits (ratios sum to 1) with a fixed seed."""
    source: SourceSplit = Field(alias="from")
    into: list[SplitName]
    ratios: list[float]
    seed: int = 13
    stratify: bool = True  # by label; sequence tasks only

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.into) != len(self.ratios):
            raise ValueError(f"into has {len(self.into)} splits but ratios has {len(self.ratios)} values")
        if len(set(self.into)) != len(self.into):
            raise ValueError(f"into lists a split twice: {self.into}")
        if any(r <= 0 for r in self.ratios) or abs(sum(self.ratios) - 1) > 1e-6:
            raise ValueError(f"ratios must be positive and sum to 1, got {self.ratios}")
        return self


class DatasetDef(_Strict):
    """How to read one dataset: a catalogue dataset with a reader, or a Hugging Face source."""
    source: Literal["catalogue", "hf"] = "catalogue"
    reader: str | None = None                  # catalogue: a name in tasks.readers.READERS
    reader_options: dict[str, Any] = {}
    files: dict[SourceSplit, str] = {}         # default files per split; `{language}` is substituted
    labels: list[str] | None = None            # the label order; default: sorted labels of the data
    license: str | None = None                 # required for hf sources (catalogue: from the catalogue)
    citation: str | None = None
    non_commercial: bool = False               # hf sources only
    # hf sources (datasets.load_dataset):
    path: str | None = None                    # builder name ('json', 'csv', ...), Hub id, or local dir
    name: str | None = None
    revision: str | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    data_dir: str | None = None
    splits: dict[SplitName | Literal["all"], str] = {}  # harness split -> dataset split name
    columns: dict[Literal["text", "label", "tokens", "tags"], str] = {}

    @model_validator(mode="after")
    def _by_source(self):
        if self.source == "catalogue":
            if not self.reader:
                raise ValueError("a catalogue dataset needs `reader` (one of the registered readers)")
            hf_only = [k for k in ("path", "name", "revision", "data_files", "data_dir") if getattr(self, k)]
            if hf_only or self.splits or self.columns:
                raise ValueError(f"{', '.join(hf_only) or 'splits/columns'} only apply to `source: hf`")
        else:
            if not self.path:
                raise ValueError("an hf dataset needs `path` (a builder such as json/csv, a Hub id, or a local dir)")
            if not self.splits:
                raise ValueError("an hf dataset needs `splits`, e.g. {train: train, dev: validation, test: test}")
            if not self.license:
                raise ValueError("an hf dataset needs `license` (it is shown to the user)")
            if self.reader:
                raise ValueError("`reader` only applies to catalogue datasets")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels lists a label twice")
        return self


class LanguageEntry(_Strict):
    dataset: str | None = None                 # default: the task's default_dataset
    files: dict[SourceSplit, str] | None = None
    derivation: Derivation | None = None


class TaskDef(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    kind: Literal["sequence", "token"]
    main_metric: str
    metrics: list[str]
    metric_options: dict[str, Any] = {}
    labels: list[str] | None = None            # task-wide label order (datasets may override)
    default_dataset: str | None = None        # default: the only dataset, if there is one
    datasets: dict[str, DatasetDef]
    languages: dict[str, LanguageEntry | None]

    @field_validator("languages", mode="before")
    @classmethod
    def _nulls(cls, v):
        return {k: (e if e is not None else {}) for k, e in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _main_in_metrics(self):
        if self.main_metric not in self.metrics:
            raise ValueError(f"main_metric {self.main_metric!r} must be one of metrics {self.metrics}")
        return self


@dataclass(frozen=True)
class LanguageSource:
    """Where one language's data of a task comes from (resolved from the YAML)."""
    language: str
    dataset: str
    definition: DatasetDef
    files: dict[str, str]          # published split ('train'|'dev'|'test'|'all') -> relative path
    derivation: Derivation | None


class TaskSpec:
    """A validated task: name, kind, metrics, and per language its dataset, files and derivation."""

    def __init__(self, definition: TaskDef, source_file: Path, extends: str | None = None):
        self.definition = definition
        self.source_file = Path(source_file)
        self.extends = extends
        self._sources = {lang: self._resolve(lang, entry or LanguageEntry())
                         for lang, entry in definition.languages.items()}

    # -- the contract used by the rest of the harness --------------------------------------------
    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def kind(self) -> str:
        """'sequence' (one label per text) or 'token' (one tag per word)."""
        return self.definition.kind

    @property
    def main_metric(self) -> str:
        return self.definition.main_metric

    @property
    def metrics(self) -> list[str]:
        return list(self.definition.metrics)

    @property
    def metric_options(self) -> dict[str, Any]:
        """Options of the metrics, e.g. {'scheme': 'IOB2', 'mode': 'strict'} for seqeval; stored with runs."""
        return dict(self.definition.metric_options)

    @property
    def description(self) -> str:
        return self.definition.description

    def languages(self) -> list[str]:
        return sorted(self._sources)

    def source_for(self, language: str) -> LanguageSource:
        if language not in self._sources:
            get_language(language)  # unknown language: did-you-mean message
            raise UserError(f"task {self.name!r} has no data for {language!r}; languages with {self.name} "
                            f"data: {', '.join(self.languages())} (add the language to {self.source_file.name})")
        return self._sources[language]

    def dataset_for(self, language: str) -> str:
        return self.source_for(language).dataset

    def license_for(self, language: str) -> str:
        src = self.source_for(language)
        if src.definition.source == "hf":
            return src.definition.license or ""
        cat = load_catalogue()
        licenses = sorted({cat.entry(p).license for p in src.files.values()})
        return "; ".join(licenses)

    def citation_for(self, language: str) -> str:
        src = self.source_for(language)
        if src.definition.citation or src.definition.source == "hf":
            return src.definition.citation or ""
        return dataset_info(src.dataset).citation

    def non_commercial_for(self, language: str) -> bool:
        src = self.source_for(language)
        if src.definition.source == "hf":
            return src.definition.non_commercial
        return dataset_info(src.dataset).non_commercial

    def labels_for(self, language: str) -> list[str] | None:
        """The declared label order for this language's dataset (None: taken from the data)."""
        src = self.source_for(language)
        return list(src.definition.labels or self.definition.labels or []) or None

    def to_config(self, language: str) -> dict[str, Any]:
        """What a run records about its task data (JSON-serialisable)."""
        src = self.source_for(language)
        cfg: dict[str, Any] = {
            "task": self.name, "kind": self.kind, "language": language, "dataset": src.dataset,
            "main_metric": self.main_metric, "metrics": self.metrics,
            "metric_options": self.metric_options, "source": src.definition.source,
            "derivation": src.derivation.model_dump(by_alias=True) if src.derivation else None,
        }
        if src.definition.source == "hf":
            d = src.definition
            cfg["hf"] = {"path": d.path, "name": d.name, "revision": d.revision, "splits": d.splits}
        else:
            cat = load_catalogue()
            cfg["files"] = {s: {"path": p, "sha256": cat.entry(p).sha256} for s, p in src.files.items()}
        return cfg

    def __repr__(self) -> str:
        return f"TaskSpec({self.name!r}, kind={self.kind!r}, languages={self.languages()})"

    # -- validation ------------------------------------------------------------------------------
    def _fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source_file}: field {field}: {message}")

    def _resolve(self, lang: str, entry: LanguageEntry) -> LanguageSource:
        d = self.definition
        where = f"languages.{lang}"
        if lang not in language_codes():
            raise self._fail(where, unknown_language_message(lang) + " (add it to tasks/languages.yaml first)")
        ds = entry.dataset or d.default_dataset or (next(iter(d.datasets)) if len(d.datasets) == 1 else None)
        if not ds:
            raise self._fail(f"{where}.dataset", "missing (the task declares several datasets and no default_dataset)")
        if ds not in d.datasets:
            raise self._fail(f"{where}.dataset", unknown_name_message("dataset", ds, list(d.datasets))
                             + " (declare it under `datasets:`)")
        ddef = d.datasets[ds]
        files = dict(entry.files) if entry.files is not None else \
            {s: f.replace("{language}", lang) for s, f in ddef.files.items()}
        if ddef.source == "catalogue":
            self._check_catalogue(where, lang, ds, ddef, files)
            published = set(files)
        else:
            if entry.files:
                raise self._fail(f"{where}.files", "an hf dataset takes `splits`, not `files`")
            published = set(ddef.splits)
        self._check_splits(where, published, entry.derivation)
        return LanguageSource(lang, ds, ddef, files, entry.derivation)

    def _check_catalogue(self, where: str, lang: str, ds: str, ddef: DatasetDef, files: dict[str, str]) -> None:
        if ddef.reader not in READERS:
            raise self._fail(f"datasets.{ds}.reader",
                             unknown_name_message("reader", ddef.reader or "", READERS.names()))
        cat = load_catalogue()
        if ds not in cat.datasets:
            raise self._fail(f"{where}.dataset", unknown_name_message("catalogue dataset", ds, list(cat.datasets)))
        if not files:
            raise self._fail(f"{where}.files", "no files (give them here or under the dataset's `files`)")
        for split, path in files.items():
            try:
                e = cat.entry(path)
            except UserError as exc:
                raise self._fail(f"{where}.files.{split}", str(exc)) from None
            if e.dataset != ds or e.language != lang:
                raise self._fail(f"{where}.files.{split}", f"{path} belongs to dataset {e.dataset!r} / "
                                 f"{e.language!r} in the catalogue, not {ds!r} / {lang!r}")

    def _check_splits(self, where: str, published: set[str], derivation: Derivation | None) -> None:
        need = set(SPLITS)
        if derivation is None:
            if published != need:
                raise self._fail(where, f"splits {sorted(published)} given; train, dev and test are needed "
                                 f"(declare a `derivation` to cut the missing ones from a published split)")
            return
        if derivation.source not in published:
            raise self._fail(f"{where}.derivation.from", f"{derivation.source!r} is not a published split "
                             f"of this language (have: {', '.join(sorted(published))})")
        kept = published - {derivation.source}
        if kept & set(derivation.into):
            raise self._fail(f"{where}.derivation.into", f"{sorted(kept & set(derivation.into))} is "
                             f"published already; derived and published splits are never mixed")
        if kept | set(derivation.into) != need:
            raise self._fail(f"{where}.derivation.into", f"the published {sorted(kept)} plus the derived "
                             f"{derivation.into} must give exactly train, dev and test")
