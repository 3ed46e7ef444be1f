"""Task metrics: accuracy and macro-F1 (sequence tasks), seqeval entity F1/precision/recall in a
declared scheme and mode (NER), and plain token accuracy (POS; seqeval would mangle UPOS tags).

Metrics are registered by name; a task YAML lists the names and its `metric_options` (e.g.
`{scheme: IOB2, mode: strict}` for NER). A new metric is a function here plus one register line.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from core.errors import ConfigError
from core.registry import Registry

Metric = Callable[[Sequence, Sequence, dict[str, Any]], float]
METRICS: Registry[Metric] = Registry("metric")

SEQEVAL_SCHEMES = ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU")
SEQEVAL_MODES = ("strict", "default")
OPTION_VALUES = {"scheme": SEQEVAL_SCHEMES, "mode": SEQEVAL_MODES}


def check_options(options: dict[str, Any]) -> None:
    for key, value in options.items():
        if key not in OPTION_VALUES:
            raise ConfigError(f"unknown metric option {key!r}; known: {', '.join(OPTION_VALUES)}")
        if value not in OPTION_VALUES[key]:
            raise ConfigError(f"metric option {key}={value!r}; allowed: {', '.join(OPTION_VALUES[key])}")


@METRICS.register("accuracy")
def accuracy(gold: Sequence[str], pred: Sequence[str], options: dict[str, Any] | None = None) -> float:
    g, p = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
    return float((g == p).mean()) if len(g) else 0.0


@METRICS.register("macro_f1")
def macro_f1(gold: Sequence[str], pred: Sequence[str], options: dict[str, Any] | None = None) -> float:
    """Unweighted mean of per-class F1 over the labels occurring in gold or pred (as sklearn's
    default); a class never predicted correctly scores 0."""
    labels = sorted(set(gold) | set(pred))
    if not labels:
        return 0.0
    index = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    g = np.fromiter((index[x] for x in gold), dtype=np.int64, count=len(gold))
    p = np.fromiter((index[x] for x in pred), dtype=np.int64, count=len(pred))
    confusion = np.bincount(g * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(float)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1.mean())


def _flatten(seqs: Sequence[Sequence[str]]) -> list[str]:
    return [t for s in seqs for t in s]


@METRICS.register("upos_accuracy")
def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                   options: dict[str, Any] | None = None) -> float:
    """Fraction of words whose tag is right, over all words of all sentences."""
    return accuracy(_flatten(gold), _flatten(pred))


METRICS.register("token_accuracy", token_accuracy)


def _seqeval(fn_name: str):
    def metric(gold, pred, options: dict[str, Any] | None = None) -> float:
        from seqeval import metrics as sm
        from seqeval import scheme as ss
        opts = {"mode": "strict", "scheme": "IOB2", **(options or {})}
        kwargs: dict[str, Any] = {"zero_division": 0}
        if opts["mode"] == "strict":
            kwargs.update(mode="strict", scheme=getattr(ss, opts["scheme"]))
        return float(getattr(sm, fn_name)([list(s) for s in gold], [list(s) for s in pred], **kwargs))
    metric.__name__ = f"entity_{fn_name.split('_')[0]}"
    return metric


METRICS.register("entity_f1", _seqeval("f1_score"))
METRICS.register("entity_precision", _seqeval("precision_score"))
METRICS.register("entity_recall", _seqeval("recall_score"))


def _check_aligned(kind: str, gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold but {len(pred)} predicted items")
    if kind == "token":
        for i, (g, p) in enumerate(zip(gold, pred)):
            if len(g) != len(p):
                raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def compute(spec, gold: Sequence, pred: Sequence) -> dict[str, float]:
    """Every metric of the task spec: labels (sequence tasks) or tag sequences (token tasks)."""
    _check_aligned(spec.kind, gold, pred)
    return {name: METRICS.get(name)(gold, pred, dict(spec.metric_options)) for name in spec.metrics}
