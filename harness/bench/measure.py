"""One measurement job, run inside a fresh child process (`run_job`).

A job is one model on one device in one dtype at one shape: it loads the model (the 'load'
sample), then runs its targets in order: 'first_forward' (the cold call, timed once),
'forward' (steady state on synthetic inputs) or 'real' (steady state over a task's test
sentences). The encoder is measured bare (the class `AutoModel` maps its config to: no task
head, and no pooler unless the checkpoint has one), in inference mode. Each target's failure (out of memory, a bad length) is caught and returned
as that target's error; the job goes on with the next target when it can.
"""
from __future__ import annotations

import gc
import inspect
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8-dynamic": "float32"}
QUANTISED = {"int8-dynamic"}  # loaded in float32, then the linear layers quantised


@dataclass(frozen=True)
class Job:
    model_path: str
    device: str
    dtype: str
    batch_size: int
    seq_len: int
    targets: tuple[str, ...]          # ('first_forward', 'forward') | ('real',) | () = load only
    warmup: int = 2
    min_iterations: int = 10
    min_duration_s: float = 2.0
    threads: int | None = None
    seed: int = 0
    real_task: str | None = None
    real_language: str | None = None
    data_dir: str | None = None

    def describe(self) -> str:
        what = f"real:{self.real_task}:{self.real_language}" if "real" in self.targets else "synthetic"
        return f"{self.device}/{self.dtype} {self.batch_size}x{self.seq_len} {what}"


def _torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


def model_class(path: str):
    """The bare-encoder class for the directory's config (importing its modelling code).

    Resolved before the load is timed: a fresh process would otherwise count the one-off
    import of transformers' modelling module (about a second) as loading time.
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    return MODEL_MAPPING[type(config)]


def load_kwargs(path: str, device: str, cls) -> dict[str, Any]:
    """A checkpoint without a pooler is loaded without one, instead of with a randomly
    initialised pooler that the saved model never had (and that would be timed and counted)."""
    from models.loading import checkpoint_has_pooler

    kwargs: dict[str, Any] = {}
    # unknown (no safetensors): let the class decide
    if "add_pooling_layer" in inspect.signature(cls.__init__).parameters and checkpoint_has_pooler(path) is False:
        kwargs["add_pooling_layer"] = False
    return kwargs


def make_resident(model) -> None:
    """Read every weight once. transformers memory-maps safetensors, so after `from_pretrained`
    on CPU the weights are still in the file: they would be read (and counted in the RSS) only
    when an input touches them, e.g. the few embedding rows of its ids (a 470 MB model showed
    16 MB of RSS after loading). Reading them makes 'load' mean 'weights in memory' and the RSS
    count the whole model, whatever the inputs."""
    import torch

    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.device.type == "cpu" and tensor.numel():
                tensor.sum()


def load_model(path: str, device: str, dtype: str, cls=None, kwargs: dict[str, Any] | None = None):
    """From disk to ready on `device`: weights loaded, cast, moved, in eval mode."""
    cls = cls or model_class(path)
    kwargs = load_kwargs(path, device, cls) if kwargs is None else kwargs
    model = cls.from_pretrained(path, dtype=_torch_dtype(dtype), trust_remote_code=False,
                                use_safetensors=True, **kwargs)
    model = model.to(device).eval()
    if dtype in QUANTISED:
        model = quantise_dynamic_int8(model)
    make_resident(model)
    return model


def quantise_dynamic_int8(model):
    """Every nn.Linear replaced by a dynamically quantised int8 one (weights int8 per tensor,
    activations quantised per batch at run time); embeddings and layer norms stay fp32. CPU only."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


# Files one of which a saved tokenizer has. (transformers 5 builds an *empty* tokenizer, with only
# its special tokens, from a directory that has none of them, instead of failing.)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                   "spiece.model", "tokenizer.model")


def _load_tokenizer(path: str):
    """The directory's tokenizer, or None when it has none (synthetic inputs then use the config)."""
    from transformers import AutoTokenizer

    if not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError):
        return None


def _accepts(model, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters


def _to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).strip()


def free_memory(device: str) -> None:
    """Collect garbage, and return cached CUDA blocks to the driver on a GPU."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _measured(tracker, fn: Callable[[], dict]) -> dict:
    """Run one target's measurement between memory marks; its error is caught and returned."""
    tracker.start()
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - one failing target must not lose the others
        out = {"error": _error_text(exc)}
    out["memory"] = tracker.read().as_dict()
    return out


def run_job(job: Job) -> dict[str, Any]:
    """Measure `job` in this process; returns JSON-able results per target plus process facts."""
    import torch
    import transformers

    from harness.bench.latency import LatencyStats, measure_latency, time_once
    from harness.bench.memory import MemoryTracker
    from harness.bench.shapes import Shape, check_length, load_real_examples, real_batches, synthetic_inputs
    from models.params import count_parameters

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if job.threads:
        torch.set_num_threads(job.threads)
    device = job.device
    results: dict[str, Any] = {}
    try:
        cls = model_class(job.model_path)
        kwargs = load_kwargs(job.model_path, device, cls)
        if device.startswith("cuda"):
            if torch.device(device).index is not None:  # peak statistics read the current device
                torch.cuda.set_device(torch.device(device))
            torch.zeros(1, device=device)  # the CUDA context is the process's cost, not the load's
            torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - reported as the load's failure
        results["load"] = {"error": _error_text(exc)}
        return {"targets": results, "process": {"torch_threads": torch.get_num_threads()}}
    tracker = MemoryTracker(device)  # baseline: libraries imported, no model yet
    loaded: dict[str, Any] = {}

    def do_load() -> dict:
        ms, model = time_once(lambda: load_model(job.model_path, device, job.dtype, cls, kwargs), device)
        loaded["model"] = model
        return {"values_ms": [ms], "n_sequences": 0, "n_tokens": 0}

    results["load"] = _measured(tracker, do_load)
    process = {"torch_threads": torch.get_num_threads(),
               "cpu_baseline_rss_mb": tracker.baseline_rss_mb,
               # glibc allocator settings this process started with (memory processes fix one)
               "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}
    if "model" not in loaded:
        return {"targets": results, "process": process}
    model = loaded["model"]
    counts = count_parameters(model)
    process["params"] = counts.as_dict()
    process["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    process["load_kwargs"] = kwargs
    tokenizer = _load_tokenizer(job.model_path)
    with_types = _accepts(model, "token_type_ids")

    def forward(batch: dict) -> Callable[[], Any]:
        def call():
            with torch.inference_mode():
                return model(**batch)
        return call

    inputs: dict[str, Any] = {}

    def synthetic() -> dict:
        """The shape's synthetic batch on the device (built once; its errors fail the target)."""
        if "batch" not in inputs:
            problem = check_length(model.config, job.seq_len)
            if problem:
                raise ValueError(problem)
            inputs["batch"] = _to_device(synthetic_inputs(
                model.config, tokenizer, Shape(job.batch_size, job.seq_len), job.seed,
                with_token_types=with_types), device)
        return inputs["batch"]

    tokens_per_call = job.batch_size * job.seq_len

    if "first_forward" in job.targets:
        def do_first() -> dict:
            ms, _ = time_once(forward(synthetic()), device)
            return {"values_ms": [ms], "n_sequences": job.batch_size, "n_tokens": tokens_per_call}
        results["first_forward"] = _measured(tracker, do_first)
        free_memory(device)

    if "forward" in job.targets:
        if "error" in results.get("first_forward", {}):
            first_error = results["first_forward"]["error"].strip().splitlines()[-1]
            results["forward"] = {"error": f"not run: the first forward at this shape failed ({first_error})"}
        else:
            def do_forward() -> dict:
                stats = measure_latency(forward(synthetic()), device=device, warmup=job.warmup,
                                        min_iterations=job.min_iterations,
                                        min_duration_s=job.min_duration_s)
                return {"values_ms": list(stats.values_ms),
                        "n_sequences": job.batch_size * stats.count,
                        "n_tokens": tokens_per_call * stats.count}
            results["forward"] = _measured(tracker, do_forward)
            free_memory(device)

    if "real" in job.targets:
        def do_real() -> dict:
            if tokenizer is None:
                raise ValueError("the model directory has no tokenizer, so real sentences cannot be encoded")
            problem = check_length(model.config, job.seq_len)
            if problem:
                raise ValueError(problem)
            examples = load_real_examples(job.real_task, job.real_language, job.data_dir)
            rb = real_batches(tokenizer, examples, job.batch_size, job.seq_len, with_token_types=with_types)
            on_device = [_to_device(b, device) for b in rb.batches]
            position = {"i": 0}

            def next_batch():
                batch = on_device[position["i"] % len(on_device)]
                position["i"] += 1
                with torch.inference_mode():
                    return model(**batch)

            k = len(on_device)
            stats: LatencyStats = measure_latency(
                next_batch, device=device, warmup=k if job.warmup else 0,  # one untimed pass
                min_iterations=max(job.min_iterations, k), min_duration_s=job.min_duration_s,
                multiple_of=k)
            passes = stats.count // k
            return {"values_ms": list(stats.values_ms), "n_sequences": rb.n_sequences * passes,
                    "n_tokens": rb.n_tokens * passes, "n_examples": rb.n_sequences,
                    "n_batches": k}
        results["real"] = _measured(tracker, do_real)
        free_memory(device)

    return {"targets": results, "process": process}

