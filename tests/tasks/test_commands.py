"""The `harness data` command functions: list, verify and fetch print concise tables."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest

from core.errors import UserError
from cli.data import data_fetch, data_list, data_verify, select_files

TASK = """\
name: mini_ner
kind: token
main_metric: entity_f1
metrics: [entity_f1]
metric_options: {scheme: IOB2, mode: strict}
datasets:
  mini/ner:
    reader: two_column
languages:
  hau_Latn:
    files: {train: mini/hau/train.txt, dev: mini/hau/dev.txt, test: mini/hau/test.txt}
"""


@pytest.fixture
def hau(mini):
    for split in ("train", "dev", "test"):
        mini.add(f"mini/hau/{split}.txt", f"Kano B-LOC\n{split} O\n", dataset="mini/ner", language="hau_Latn",
                 task="ner", split=split, license="CC BY-NC 4.0", non_commercial=True)
    mini.add("mini/hau/LICENSE.txt", "CC BY-NC 4.0\n", dataset="mini/ner", language="hau_Latn", task="ner",
             split="doc", license="CC BY-NC 4.0", non_commercial=True)
    mini.add("raw/hau/text.txt", "Sannu da zuwa\n", dataset="raw/mini", language="hau_Latn", task="raw",
             split="unlabeled")
    (mini.task_dir(only=True) / "mini_ner.yaml").write_text(TASK)
    return mini


def run(fn, *args, **kwargs):
    lines: list[str] = []
    code = fn(*args, echo=lines.append, **kwargs)
    return code, "\n".join(lines)


def test_select_files_with_docs_and_raw(hau):
    assert [e.path for e in select_files()] == ["mini/hau/LICENSE.txt", "mini/hau/dev.txt", "mini/hau/test.txt",
                                                "mini/hau/train.txt", "raw/hau/text.txt"]
    assert [e.path for e in select_files(["mini_ner"], include_docs=False)] == [
        "mini/hau/dev.txt", "mini/hau/test.txt", "mini/hau/train.txt"]
    with pytest.raises(UserError, match=r"unknown task 'mini_nre' \(did you mean 'mini_ner'"):
        select_files(["mini_nre"])
    with pytest.raises(UserError, match=r"no data for tasks mini_ner in languages mlt_Latn"):
        select_files(["mini_ner"], ["mlt_Latn"])


def test_list_and_verify_show_status_and_licence(hau):
    (hau.data_dir / "mini/hau/dev.txt").unlink()
    (hau.data_dir / "mini/hau/test.txt").write_text("Kano B-LOC\ntest X\n")
    code, out = run(data_list, data_dir=hau.data_dir)
    assert code == 0
    assert "mini/hau/train.txt  hau_Latn  19 B  ok       CC BY-NC 4.0 [NC]" in out
    assert "mini/hau/dev.txt    hau_Latn  17 B  missing" in out and "corrupt" in out
    assert "4 files: 2 ok, 1 missing, 1 corrupt" in out and "[NON-COMMERCIAL]" in out
    code, out = run(data_verify, data_dir=hau.data_dir)
    assert code == 1
    assert "mini/hau/test.txt  corrupt  sha256 " in out and "mini/hau/dev.txt   missing" in out
    assert "3 of 5 files verified; 2 missing or corrupt" in out


def test_fetch_from_a_loopback_mirror_then_verify(hau, tmp_path):
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hau.data_dir)))
    httpd.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        target = tmp_path / "fresh"
        code, out = run(data_fetch, ["mini_ner"], None, target, [f"http://127.0.0.1:{httpd.server_address[1]}"])
        assert code == 0 and "fetched 4 file(s)" in out and "Non-commercial: mini/ner" in out
        assert run(data_verify, ["mini_ner"], data_dir=target)[0] == 0
        code, out = run(data_fetch, ["mini_ner"], None, target, [])
        assert "fetched 0 file(s), 0 B; 4 already present and verified" in out
    finally:
        httpd.shutdown()
        httpd.server_close()
