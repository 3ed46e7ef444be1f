"""The shape of a BERT-layout encoder, and its parameter count computed from the shape alone.

The planner uses this to print the size of every grid point before any training; the tests check
that the prediction equals `models.params.count_parameters` of the built model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from models.params import ParamCounts


@dataclass(frozen=True)
class ModelShape:
    vocab: int         # embedding rows
    hidden: int
    layers: int
    heads: int
    ffn: int
    positions: int     # position embedding rows
    token_types: int
    exact: bool = True  # False when a stage's output size depends on data (vocab min_count, small text)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads  # what HF BERT computes: int(hidden / heads)

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        return cls(vocab=config.vocab_size, hidden=config.hidden_size,
                   layers=config.num_hidden_layers, heads=config.num_attention_heads,
                   ffn=config.intermediate_size, positions=config.max_position_embeddings,
                   token_types=config.type_vocab_size)

    def with_(self, **changes) -> "ModelShape":
        return replace(self, **changes)

    def params(self) -> ParamCounts:
        """Encoder parameters as count_parameters counts them (no pooler, no heads, tied once)."""
        h, a, f = self.hidden, self.heads * self.head_dim, self.ffn
        embedding = (self.vocab + self.positions + self.token_types) * h + 2 * h
        attention = 3 * (h * a + a) + (a * h + h) + 2 * h
        feed_forward = (h * f + f) + (f * h + h) + 2 * h
        non_embedding = self.layers * (attention + feed_forward)
        return ParamCounts(total=embedding + non_embedding, embedding=embedding,
                           non_embedding=non_embedding)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["head_dim"] = self.head_dim
        return d

    def describe(self) -> str:
        return (f"V{self.vocab} H{self.hidden} L{self.layers} A{self.heads}x{self.head_dim} "
                f"F{self.ffn}")
