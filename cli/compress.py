"""`harness compress --grid GRID [--data-dir DIR] [--dry-run] [--device DEV]`."""
from __future__ import annotations

import sys
from pathlib import Path

from compression.build import BuiltPoint, build_grid, format_results
from core.errors import UserError
from harness.grid import load_grid
from tasks.fetch import resolve_data_dir


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr if msg.startswith(("[", "      ")) else sys.stdout, flush=True)


def compress(grid_path: str | Path, data_dir: str | Path | None = None, dry_run: bool = False,
             device: str | None = None, executor: str = "local", address: str | None = None) -> list[BuiltPoint]:
    """Print the plan, build what is missing (unless dry_run) and print the final table.
    Raises UserError for a bad grid; returns the points (failed ones carry `error`)."""
    grid = load_grid(grid_path)
    data_root = resolve_data_dir(data_dir or grid.data_dir)
    if executor == "ray" and not dry_run:
        from harness.ray_executor import build_grid_ray, connect
        connect(address, log=_echo)
        points = build_grid_ray(grid, data_dir=data_root, device=device, log=_echo)
        _echo("")
        _echo(format_results(points))
    else:
        points = build_grid(grid, data_dir=data_root, dry_run=dry_run, device=device, echo=_echo)
    failed = [p for p in points if p.error]
    if failed:
        raise UserError(f"{len(failed)} of {len(points)} compressed point(s) failed, e.g. "
                        f"{failed[0].model_key}: {failed[0].error}")
    return points
