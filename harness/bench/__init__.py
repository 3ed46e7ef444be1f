"""Latency and memory benchmarks of models (see docs/benchmarks.md).

- `config.BenchSection`: the grid file's `benchmark:` section.
- `runner.bench_models(models, section, store, data_dir=..., force=...)`: measure and store.
- `cli.bench.bench(...)` (outside this package): the body of `harness bench`.
- Trackers: `latency.measure_latency` / `time_once`, `memory.MemoryTracker`; `isolate.run_in_child`
  runs each measurement in a fresh process; `shapes` builds the shape grid and the inputs.
- `repeats.Rounds` runs every job in `repeats` processes, interleaved across models, with
  separate memory processes; `combine.combine` turns a row's processes into its figures.
"""
from harness.bench.config import BenchSection, load_bench_section
from harness.bench.runner import BenchModel, bench_models

__all__ = ["BenchModel", "BenchSection", "bench_models", "load_bench_section"]
