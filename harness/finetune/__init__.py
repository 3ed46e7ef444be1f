"""The fine-tuning protocol: a head on the encoder, training with early stopping on dev, one test score."""
