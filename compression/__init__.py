"""Compression stages (vocab, depth, ffn, hidden, distill), recipes and the stage cache."""
