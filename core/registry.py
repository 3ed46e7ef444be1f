"""One small generic registry with "did you mean" on unknown names.

After lm-evaluation-harness's registry: entries may be objects or lazy "module:attr" strings that
are imported on first use, so registering a name costs nothing at import time.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Generic, Iterator, TypeVar

from core.errors import UserError

T = TypeVar("T")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A short hint naming the closest known names, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def unknown_name_message(kind: str, name: str, known: list[str] | tuple[str, ...]) -> str:
    known_sorted = sorted(known)
    return f"unknown {kind} {name!r}{did_you_mean(name, known_sorted)}; known: {', '.join(known_sorted)}"


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str | None = None):
        """Register `entry` under `name`; used bare it is a decorator."""
        if entry is None:
            def deco(obj):
                self.register(name, obj)
                return obj
            return deco
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UserError(unknown_name_message(self.kind, name, list(self._entries)))
        entry = self._entries[name]
        if isinstance(entry, str) and ":" in entry:
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
