"""compression_manifest.json: what a compressed model is and how it was made.

Written beside every stage's output:

    format, teacher {name, source, revision, params, shape}, language, seed,
    chain [{stage, label, config, key, parent_key, data_fingerprint, seed, wall_time_s, report,
            params, shape}],
    stage_chain ("depth(6,stride) > distill > vocab(5000)"), text (the training text's sources), key, params {total, embedding,
    non_embedding} (models.params.count_parameters of the loaded model: no pooler or
    heads, tied weights once), compression_ratio (teacher total / total), reduction (1 - total /
    teacher total), vocab_size (tokenizer), shape, data_fingerprints, wall_time_s, versions.

config.json gets `compression_provenance` (teacher, language, stage chain, key, parameter
counts), after lm-vocab-trimmer, so a model copied out of the cache still says what it is.
"""
from __future__ import annotations

import functools
import json
import platform
from pathlib import Path

from compression.tensors.modelio import load_model, load_tokenizer
from compression.tensors.shapes import ModelShape
from models.params import count_parameters

MANIFEST_FILE = "compression_manifest.json"
FORMAT = 1


def read_manifest(model_dir: Path) -> dict | None:
    path = Path(model_dir) / MANIFEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def measure(model_dir: Path) -> tuple[dict, ModelShape, int]:
    """(parameter counts, shape, tokenizer size) of a model directory, by loading it."""
    model = load_model(model_dir)
    counts = count_parameters(model).as_dict()
    shape = ModelShape.from_config(model.config)
    tokenizer_size = len(load_tokenizer(model_dir))
    return counts, shape, tokenizer_size


@functools.lru_cache(maxsize=16)
def _measure_cached(path: str, stamp: tuple) -> tuple[dict, ModelShape, int]:
    return measure(Path(path))


def teacher_record(teacher_dir: Path, teacher: dict | None) -> dict:
    """The original teacher's identity and size (measured once per process and file version)."""
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(Path(teacher_dir).glob("*.safetensors")))
    counts, shape, tok_size = _measure_cached(str(teacher_dir), stamp)
    counts = dict(counts)
    info = dict(teacher or {})
    info.setdefault("name", Path(teacher_dir).name)
    return {**info, "params": counts, "shape": shape.as_dict(), "vocab_size": tok_size}


def _versions() -> dict:
    import tokenizers
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "python": platform.python_version()}


def _dump(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def write_manifest(out_dir: Path, *, parent_dir: Path, cfg, ctx, report: dict, wall_time_s: float,
                   data_used: bool, seed_used: bool) -> dict:
    parent = read_manifest(parent_dir)
    teacher = parent["teacher"] if parent else teacher_record(parent_dir, ctx.teacher)
    chain = list(parent["chain"]) if parent else []
    counts, shape, tok_size = measure(out_dir)
    entry = {
        "stage": cfg.stage, "label": cfg.label(), "config": cfg.model_dump(mode="json"),
        "key": ctx.key, "parent_key": ctx.parent_key,
        "data_fingerprint": ctx.data_fingerprint if data_used else None,
        "seed": ctx.seed if seed_used else None,
        "wall_time_s": round(wall_time_s, 3), "report": report,
        "params": counts, "shape": shape.as_dict(),
    }
    chain.append(entry)
    teacher_total = teacher["params"]["total"]
    manifest = {
        "format": FORMAT,
        "teacher": teacher,
        "language": ctx.language if ctx.language is not None else (parent or {}).get("language"),
        "seed": ctx.seed,
        "key": ctx.key,
        "stage_chain": " > ".join(e["label"] for e in chain),
        "chain": chain,
        "params": counts,
        "compression_ratio": round(teacher_total / counts["total"], 4),
        "reduction": round(1 - counts["total"] / teacher_total, 6),
        "vocab_size": tok_size,
        "shape": shape.as_dict(),
        # which text the data-using stages read (compression.texts.text_inputs): what a published
        # model names as its training data; None when no stage read text
        "text": ctx.text if data_used and ctx.text is not None else (parent or {}).get("text"),
        "data_fingerprints": sorted({e["data_fingerprint"] for e in chain if e["data_fingerprint"]}),
        "wall_time_s": round(sum(e["wall_time_s"] for e in chain), 3),
        "versions": _versions(),
    }
    (Path(out_dir) / MANIFEST_FILE).write_text(_dump(manifest), encoding="utf-8")
    _write_provenance(Path(out_dir), manifest)
    return manifest


def _write_provenance(out_dir: Path, manifest: dict) -> None:
    path = out_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    t = manifest["teacher"]
    config["compression_provenance"] = {
        "tool": "lrl-compress-harness",
        "teacher": {k: t.get(k) for k in ("name", "source", "revision")},
        "language": manifest["language"],
        "stage_chain": manifest["stage_chain"],
        "key": manifest["key"],
        "params": manifest["params"],
        "compression_ratio": manifest["compression_ratio"],
        "manifest": MANIFEST_FILE,
    }
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
