"""Benchmark rows in the store's `benchmarks` table: which are done, writing, reading back.

A row is keyed by (model_key, target, device, dtype, batch_size, seq_len); its bench_id is
`harness.store.bench_id_for` of that key. Writing replaces a row with the same key (a retried
failure, or a forced re-measurement). SQL takes values only as bound parameters.
"""
from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from typing import Any, Iterable, Sequence

from harness.store import Store, bench_id_for

# What `harness bench` shows: the rows, the view's speed-up and memory ratios, and the memory the
# model itself adds on CPU (peak RSS - the measuring process's baseline before loading; rows
# written before the baseline had a column keep it in environment.process).
TABLE_SQL = """
WITH measured AS (
    SELECT *, cpu_peak_rss_mb - coalesce(cpu_baseline_rss_mb,
              TRY_CAST(environment->>'$.process.cpu_baseline_rss_mb' AS DOUBLE)) AS cpu_model_rss_mb
    FROM benchmarks
)
SELECT b.model_key, b.target, b.device, b.dtype, b.batch_size, b.seq_len, b.status, b.error,
       b.n_iterations, b.repeats, b.latency_p50_ms, b.latency_p50_spread, b.latency_p90_ms,
       b.throughput_seq_s, b.throughput_tok_s, b.cpu_peak_rss_mb, b.cpu_model_rss_mb,
       b.cpu_peak_rss_spread, b.cpu_model_rss_spread, b.cuda_peak_allocated_mb,
       b.cuda_peak_allocated_spread, v.speedup_p50,
       v.cpu_memory_ratio, v.cuda_memory_ratio,
       b.cpu_model_rss_mb / nullif(t.cpu_model_rss_mb, 0) AS cpu_model_memory_ratio, m.teacher_key
FROM measured b
LEFT JOIN models m ON m.model_key = b.model_key
LEFT JOIN v_bench_vs_teacher v ON v.model_key = b.model_key AND v.target = b.target
     AND v.device = b.device AND v.dtype = b.dtype AND v.batch_size = b.batch_size
     AND v.seq_len = b.seq_len
LEFT JOIN measured t ON v.model_key IS NOT NULL AND t.model_key = m.teacher_key
     AND t.target = b.target AND t.device = b.device AND t.dtype = b.dtype
     AND t.batch_size = b.batch_size AND t.seq_len = b.seq_len
WHERE list_contains(?, b.model_key)
ORDER BY b.device, b.dtype, b.target, b.batch_size, b.seq_len, m.teacher_key,
         b.model_key <> m.teacher_key, b.model_key
"""


JSON_COLUMNS = ("raw_latencies_ms", "per_repeat", "environment")


@dataclass(frozen=True, order=True)
class RowKey:
    model_key: str
    target: str
    device: str
    dtype: str
    batch_size: int
    seq_len: int

    @property
    def bench_id(self) -> str:
        return bench_id_for(*astuple(self))


def stored_done(store: Store, model_keys: Sequence[str]) -> set[RowKey]:
    """Keys of rows already measured successfully for these models."""
    if not model_keys:
        return set()
    _, rows = store.query(
        """SELECT model_key, target, device, dtype, batch_size, seq_len FROM benchmarks
           WHERE status = 'done' AND list_contains(?, model_key)""",
        [list(model_keys)],
    )
    return {RowKey(*r) for r in rows}


def _table_columns(con) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'benchmarks'"
    ).fetchall()
    return [r[0] for r in rows]


def write_rows(store: Store, rows: Iterable[dict[str, Any]]) -> None:
    """Insert or replace rows (dicts of column -> value; JSON columns as Python objects).

    Keys the table has no column for are left out, so a column added to the schema later (see
    docs/benchmarks.md) starts filling without a change here.
    """
    rows = list(rows)
    if not rows:
        return
    with store.transaction() as con:
        columns = set(_table_columns(con)) - {"created_at"}
        for row in rows:
            data = {k: v for k, v in row.items() if k in columns}
            for k in JSON_COLUMNS:
                if k in data and data[k] is not None and not isinstance(data[k], str):
                    data[k] = json.dumps(data[k], default=str)
            names = list(data)
            con.execute("DELETE FROM benchmarks WHERE bench_id = ?", [data["bench_id"]])
            con.execute(
                f"INSERT INTO benchmarks ({', '.join(names)}, created_at) "
                f"VALUES ({', '.join('?' for _ in names)}, now())",
                [data[n] for n in names],
            )


def read_table(store: Store, model_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Stored rows of these models with their speed-up and memory ratios vs the teacher."""
    if not model_keys:
        return []
    cols, rows = store.query(TABLE_SQL, [list(model_keys)])
    return [dict(zip(cols, r)) for r in rows]
