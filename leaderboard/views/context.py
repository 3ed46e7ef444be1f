"""What every view needs: the database, the protocol, the sidebar's filters, the benchmark shape."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leaderboard.dbstate import DbState
from leaderboard.tables import Filters


@dataclass(frozen=True)
class ViewContext:
    db: str
    state: DbState
    protocol: str                       # the protocol family (a grid's protocol section)
    protocol_members: frozenset         # its (task, protocol_hash) pairs
    filters: Filters
    shape: tuple | None = None          # (target, device, dtype, batch_size, seq_len)
    shape_label: str = ""
    memory_title: str = "memory (MB)"
    language_names: dict[str, str] | None = None

    def in_protocol(self, df) -> "pd.Series":
        """Which rows of a frame with task and protocol_hash columns belong to the protocol."""
        pairs = zip(df["task"], df["protocol_hash"])
        return pd.Series([pair in self.protocol_members for pair in pairs], index=df.index, dtype=bool)

    def language_label(self, code: str) -> str:
        name = (self.language_names or {}).get(code)
        return f"{code} · {name}" if name else code
