"""Values that several packages must agree on."""
from __future__ import annotations

IGNORE_INDEX = -100  # label of positions the loss and the metrics ignore (padding, non-first sub-words, unmasked)
