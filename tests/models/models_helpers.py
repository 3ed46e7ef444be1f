"""Helpers for the models tests: a small synthetic E5S1 file (with a naive reference Q4_0
quantiser) and a loopback server that imitates the Hugging Face Hub endpoints snapshot_download uses."""
from __future__ import annotations

import hashlib
import json
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

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


# --------------------------------------------------------------------------- a fake Hub

class FakeHub:
    """Serves model repos from local directories the way huggingface.co does for snapshot_download:
    GET /api/models/{repo}/revision/{rev} (the commit, with `siblings` for older clients),
    GET /api/models/{repo}/tree/{rev} (the file listing huggingface_hub 1.x+ uses), and
    HEAD/GET /{repo}/resolve/{rev}/{file} with X-Repo-Commit, ETag and Content-Length headers."""

    def __init__(self):
        self.repos: dict[str, tuple[str, dict[str, bytes]]] = {}   # repo -> (commit, files)
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_repo(self, repo_id: str, directory: Path, extra: dict[str, bytes] | None = None) -> str:
        files = {p.relative_to(directory).as_posix(): p.read_bytes()
                 for p in sorted(directory.rglob("*")) if p.is_file()}
        files.update(extra or {})
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name])
        commit = digest.hexdigest()
        self.repos[repo_id] = (commit, files)
        return commit

    def downloaded(self) -> set[str]:
        return {path.rsplit("/resolve/", 1)[1].split("/", 1)[1]
                for method, path in self.requests if method == "GET" and "/resolve/" in path}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      send_body: bool = True):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def _json(self, obj, status: int = 200):
                self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def _error(self, code: str, status: int = 404, send_body: bool = True):
                self._send(status, json.dumps({"error": code}).encode(),
                           {"X-Error-Code": code, "Content-Type": "application/json"}, send_body)

            def _repo(self, parts: list[str]):
                repo_id = "/".join(parts[:2])
                return repo_id, hub.repos.get(repo_id)

            def _route(self, send_body: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                parts = [p for p in path.split("/") if p]
                if parts[:2] == ["api", "models"] and len(parts) >= 5:
                    repo_id, repo = self._repo(parts[2:])
                    if repo is None:
                        return self._error("RepoNotFound")
                    commit, files = repo
                    rev = parts[5] if len(parts) > 5 else "main"
                    if rev not in ("main", commit):
                        return self._error("RevisionNotFound")
                    if parts[4] == "revision":
                        return self._json({"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                                           "siblings": [{"rfilename": f} for f in files]})
                    if parts[4] == "tree":
                        return self._json([{"type": "file", "oid": hashlib.sha1(data).hexdigest(),
                                            "size": len(data), "path": name} for name, data in files.items()])
                    return self._error("EntryNotFound")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._error("RepoNotFound", send_body=send_body)
                    commit, files = repo
                    if parts[3] not in ("main", commit):
                        return self._error("RevisionNotFound", send_body=send_body)
                    name = "/".join(parts[4:])
                    if name not in files:
                        return self._error("EntryNotFound", send_body=send_body)
                    data = files[name]
                    return self._send(200, data, {"X-Repo-Commit": commit,
                                                  "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                                  "Content-Type": "application/octet-stream"}, send_body)
                return self._error("EntryNotFound", send_body=send_body)

            def do_GET(self):
                self._route(send_body=True)

            def do_HEAD(self):
                self._route(send_body=False)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
