"""Knowledge distillation of a student from its teacher: the loop (loop.py: DistillConfig, distill),
the objective and its losses, the text data and masking, loading the two models, checkpoints and
DDP. Launched by the distill stage (compression/stages/distill.py) or `python -m cli.distill`.
Imports no other part of compression."""
