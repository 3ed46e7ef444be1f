"""Evaluation harness: grid config, runner, fine-tuning, benchmarks, store, report."""
