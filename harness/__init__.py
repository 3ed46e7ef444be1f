"""Evaluation harness: grid config, model sources, fine-tuning protocol, runner, store, benchmarks."""
