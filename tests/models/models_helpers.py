"""Helpers for the models tests: a small synthetic E5S1 file (with a naive reference Q4_0
quantiser); the loopback Hub (FakeHub) lives in tests/hub_helpers.py."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


# --------------------------------------------------------------------------- synthetic E5S1 file

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
WORD_PIECES = ["\u2581", "\u2581hello", "\u2581world", "\u2581A", "\u2581wor", "ld"]
CHAR_PIECES = list("helowrdA")
NORM_MAP = {0xFF21: "A", 0x09: " ", 0x07: "", 0x2581: " ", 0xFB01: "fi"}


def reference_q4_0(w: np.ndarray, block_signs: bool = True) -> tuple[bytes, np.ndarray]:
    """Quantise w to Q4_0 one block at a time (the naive way) -> (bytes, the dequantised values).
    Odd blocks get a negative scale: the format allows it and a sign error must show."""
    blob = bytearray()
    expected = []
    for i, block in enumerate(np.asarray(w, dtype=np.float64).reshape(-1, 32)):
        amax = float(np.abs(block).max())
        d = np.float16((amax / 7.0 if amax else 0.0) * (-1.0 if block_signs and i % 2 else 1.0))
        df = float(d)
        q = [8 if df == 0 else min(15, max(0, int(round(x / df)) + 8)) for x in block]
        blob += d.tobytes()
        blob += bytes(q[j] | (q[j + 16] << 4) for j in range(16))
        expected += [(v - 8) * df for v in q]
    return bytes(blob), np.asarray(expected, dtype=np.float32)


@dataclass
class SyntheticE5:
    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    pieces: list[str]
    expected: dict[str, np.ndarray] = field(default_factory=dict)   # e5 name -> dequantised values


def write_synthetic_e5(path: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, ffn: int = 128,
                       max_positions: int = 32, extra_rows: int = 3, seed: int = 0,
                       pieces: list[str] | None = None, magic: bytes = b"E5S1") -> SyntheticE5:
    rng = np.random.default_rng(seed)
    pieces = pieces if pieces is not None else SPECIALS + WORD_PIECES + CHAR_PIECES + ["<mask>"]
    scores = np.array([0.0 if p.startswith("<") else -1.0 - 0.1 * i for i, p in enumerate(pieces)], dtype="<f4")
    vocab_rows = len(pieces) + extra_rows
    shapes_q4 = {"emb.word": (vocab_rows, hidden)}
    shapes_f32 = {"emb.pos": (max_positions, hidden), "emb.type": (2, hidden),
                  "emb.ln.w": (hidden,), "emb.ln.b": (hidden,)}
    for i in range(layers):
        for part, shape in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                            ("ao", (hidden, hidden)), ("fi", (ffn, hidden)), ("fo", (hidden, ffn))):
            shapes_q4[f"l{i}.{part}.w"] = shape
            shapes_f32[f"l{i}.{part}.b"] = (shape[0],)
        for ln in ("aln", "oln"):
            shapes_f32[f"l{i}.{ln}.w"] = (hidden,)
            shapes_f32[f"l{i}.{ln}.b"] = (hidden,)

    tensors: list[tuple[str, int, int, bytes]] = []
    expected: dict[str, np.ndarray] = {}
    for name, shape in shapes_q4.items():
        blob, values = reference_q4_0(rng.normal(0, 0.05, size=shape))
        tensors.append((name, 1, int(np.prod(shape)), blob))
        expected[name] = values
    for name, shape in shapes_f32.items():
        values = rng.normal(1.0 if name.endswith("ln.w") else 0.0, 0.02, size=shape).astype("<f4")
        tensors.append((name, 0, values.size, values.tobytes()))
        expected[name] = values.reshape(-1).astype(np.float32)

    head = bytearray(magic + struct.pack("<I", 1))
    head += struct.pack("<7i", hidden, layers, heads, ffn, vocab_rows, max_positions, 2)
    head += struct.pack("<fi", 1e-12, 32)
    blob = b"".join(p.encode("utf-8") for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in pieces]).astype("<u4")
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offsets.tobytes() + scores.tobytes() + blob
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                    for cp, out in sorted(NORM_MAP.items()))
    head += struct.pack("<iI", len(NORM_MAP), len(norm)) + norm
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in tensors)
    offset = len(head) + dir_size
    directory = bytearray(struct.pack("<i", len(tensors)))
    for name, dtype, count, data in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(data))
        offset += len(data)
    path.write_bytes(bytes(head) + bytes(directory) + b"".join(t[3] for t in tensors))
    return SyntheticE5(path=path, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_rows=vocab_rows,
                       max_positions=max_positions, pieces=pieces, expected=expected)
