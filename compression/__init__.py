"""Compression stages (vocab, depth, ffn, hidden, distill), recipes and the stage cache.

    harness compress --grid GRID [--dry-run]     # compression.commands.compress
    build_grid(grid, data_dir=...) -> [BuiltPoint]   # compression.build

Where things live:

- stages, each `apply(parent_dir, cfg, ctx, out_dir)`: vocab.py (+ tokenizer_trim.py), depth.py,
  ffn.py, hidden.py, distill_stage.py (wraps distill.py); run by stages.run_stage, which writes
  the manifest (manifest.py);
- the tensor plumbing they share: layout.py (which axis of which tensor is what), surgery.py
  (selections and projections), modelio.py (load a parent's tensors, save a child),
  importance.py (one-pass Taylor scores), shapes.py (shapes and parameter counts);
- the grid: config.py (the `compression:` section), recipes.py, texts.py (training text),
  plan.py (points, keys, predictions), cache.py (keyed, atomic entries), build.py, commands.py;
- tiny.py: tiny teachers and grids for tests and smoke runs.
"""
