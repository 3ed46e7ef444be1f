"""The report: one line per step, the printed table, and the JSON file."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any


def summary(entry: dict[str, Any]) -> str:
    """One line of what a passed step measured."""
    r, name = entry.get("result") or {}, entry["name"]
    if name == "teacher":
        s = r["shape"]
        return (f"{r['source']}: {r['params']['total'] / 1e6:.1f}M params "
                f"(V{s['vocab']} L{s['layers']} H{s['hidden']} F{s['ffn']})")
    if name == "data":
        return (f"{r['task']}/{r['language']}: {r['train']} train, {r['dev']} dev, {r['test']} test; "
                f"{r['text_lines']} text lines")
    if name.startswith("finetune"):
        seen = "/".join(sorted(r["linear_output_dtypes"]["train"]))
        return (f"test {r['main_metric']} {r['score']:.3f} in {r['wall_seconds']:.1f} s, precision {r['precision']} "
                f"(linear outputs {seen})")
    if name == "compress":
        s = r["shape"]
        return (f"{r['params']['total'] / 1e6:.2f}M params (V{s['vocab']} L{s['layers']} F{s['ffn']}), "
                f"{r['reduction'] * 100:.1f}% smaller than the teacher")
    if name == "distill_bf16":
        return (f"{r['steps']} steps, {r['tokens_per_second']:.0f} tok/s, loss {r['loss_start']:.4f} -> "
                f"{r['loss_end']:.4f} ({r['precision']})")
    if name == "trackers":
        counts = Counter(c["status"] for c in r["checks"])
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if name == "bench":
        parts = []
        for t, p, c in zip(r["teacher"], r["point"], r["comparison"]):
            parts.append(f"{t['dtype']} p50 {t['p50_ms']:.2f} -> {p['p50_ms']:.2f} ms "
                         f"({c['speedup_p50']:.1f}x), peak {t['peak_mb']:.0f} -> {p['peak_mb']:.0f} MB")
        return "; ".join(parts)
    return ""


def format_table(report: dict[str, Any]) -> str:
    """The printed table: one line per step (status, seconds, what it measured or why it failed),
    then the failed and skipped tracker checks, with the device line on top."""
    d = report["device"]
    head = (f"device {d['device']} ({d.get('device_name')}), torch {d['torch']}, CUDA {d['cuda_runtime'] or '-'}, "
            f"bf16 {'yes' if d.get('bf16_supported') else 'no'}; "
            f"{'quick' if report['mode']['quick'] else 'full'} run, {report['wall_seconds']:.1f} s")
    rows = [("step", "status", "seconds", "result")]
    for s in report["steps"]:
        text = summary(s) if s["status"] == "passed" else s["error"]
        rows.append((s["name"], s["status"], f"{s['seconds']:.1f}", text))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [head] + [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    for s in report["steps"]:
        for c in (s.get("result") or {}).get("checks", []):
            if c["status"] != "passed":
                lines.append(f"  {s['name']}: {c['name']}: {c['detail']}")
        for w in s.get("warnings") or []:
            lines.append(f"  {s['name']}: warning: {w}")
    return "\n".join(lines)


def default_report_path(report: dict[str, Any], root: Path = Path("results") / "doctor") -> Path:
    stamp = report["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    device = report["mode"]["device"].replace(":", "")
    return root / f"doctor-{device}{'-quick' if report['mode']['quick'] else ''}-{stamp}.json"


def write_report(report: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def exit_code(report: dict[str, Any]) -> int:
    return 0 if report["ok"] else 1
