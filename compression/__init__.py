"""Compression stages (vocab, depth, ffn, hidden, distill), recipes and the stage cache.

    harness compress --grid GRID [--dry-run]     # cli.compress.compress
    build_grid(grid, data_dir=...) -> [BuiltPoint]   # compression.build

Where things live (each layer imports only the ones listed before it):

- tensors/: the tensor plumbing the stages share: layout.py (which axis of which tensor is what),
  surgery.py (selections and projections), modelio.py (load a parent's tensors and tokenizer,
  save a child), importance.py (one-pass Taylor scores), shapes.py (shapes and parameter counts);
- distill/: knowledge distillation: loop.py (DistillConfig, distill), objective.py, losses.py,
  data.py (masking, batching plan), models.py (loading student and teacher), checkpoint.py, ddp.py;
- schema.py (one config class per stage, recipe parameters) and manifest.py;
- stages/, each `apply(parent_dir, cfg, ctx, out_dir)`: vocab.py (+ tokenizer_trim.py), depth.py,
  ffn.py, hidden.py, distill.py (wraps distill/loop.py); run by stages.run_stage (stages/__init__.py),
  which writes the manifest;
- the grid: recipes.py, config.py (the `compression:` section), texts.py (training text),
  plan.py (points, keys, predictions), cache.py (keyed, atomic entries), build.py;
- tiny.py: tiny teachers and grids for tests and smoke runs.
"""
