"""`harness results --degradation`: the leaderboard's degradation view as text, so that a figure
in docs/results.md is reproduced by one command (leaderboard/degradation.py does the work)."""
from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from leaderboard.degradation import default_selection, report
from leaderboard.queries import run_query


def _protocol(db: Path, wanted: str | None) -> tuple[str, str] | None:
    """(protocol id, its label): `wanted` as an id or a prefix of one, else the one with most runs;
    None when no run has finished."""
    protocols = run_query(db, "protocols")
    if protocols.empty:
        return None
    ids = list(protocols["protocol_id"])
    if wanted is not None:
        ids = [p for p in ids if p.startswith(wanted)]
        if len(ids) != 1:
            raise UserError(f"--protocol {wanted!r} matches {len(ids)} of the stored protocols "
                            f"({', '.join(p[:12] for p in protocols['protocol_id'])}); give more "
                            "characters of one of them")
    row = protocols[protocols["protocol_id"] == ids[0]].iloc[0]
    return row.protocol_id, f"{row.profile + ' ' if row.profile else ''}{row.protocol_id[:12]} ({row.n_runs} runs)"


def degradation_text(db: Path, tasks: tuple[str, ...], protocol: str | None) -> str:
    found = _protocol(db, protocol)
    if found is None:
        return f"no finished runs in {db}"
    protocol_id, label = found
    points = run_query(db, "degradation_points", (protocol_id,))
    sel = default_selection(points, tasks)
    text = report(points, sel) if sel is not None else ""
    if not text:
        return (f"no compressed model with a teacher score to compare with under protocol {label}"
                + (f" for task(s) {', '.join(tasks)}" if tasks else ""))
    return f"protocol {label}\n{text}"
