"""What every view needs: the database, the protocol, the sidebar's filters, the benchmark shape."""
from __future__ import annotations

from dataclasses import dataclass

from leaderboard.dbstate import DbState
from leaderboard.tables import Filters


@dataclass(frozen=True)
class ViewContext:
    db: str
    state: DbState
    protocol: str
    filters: Filters
    shape: tuple | None = None          # (target, device, dtype, batch_size, seq_len)
    shape_label: str = ""
    memory_title: str = "memory (MB)"
    language_names: dict[str, str] | None = None

    def language_label(self, code: str) -> str:
        name = (self.language_names or {}).get(code)
        return f"{code} · {name}" if name else code
