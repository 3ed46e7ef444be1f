"""Where the project keeps things it can rebuild: converted models, fetched data, stage outputs."""
from __future__ import annotations

import os
import re
from pathlib import Path

APP_NAME = "lrl-harness"


def cache_root() -> Path:
    """$HARNESS_CACHE_DIR, else the user cache directory (e.g. ~/.cache/lrl-harness)."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir
    return Path(user_cache_dir(APP_NAME))


def safe_name(name: str, max_len: int = 80) -> str:
    """A name usable as one path component: no separators, no leading dots."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return (cleaned or "_")[:max_len]
