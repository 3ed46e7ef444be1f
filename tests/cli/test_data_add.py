"""`harness data add`: MANIFEST.json entries for new files and a rebuilt catalogue, no JSON by hand."""
from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from cli.app import app

COMMIT = "a" * 40


def test_data_add_writes_manifest_entries_and_the_catalogue(tmp_path):
    data = tmp_path / "data"
    (data / "sib200" / "mlt_Latn").mkdir(parents=True)
    (data / "MANIFEST.json").write_text(json.dumps([]))
    for split in ("train", "dev"):
        (data / "sib200" / "mlt_Latn" / f"{split}.tsv").write_text("index_id\tcategory\ttext\n1\thealth\tx\n\n")
    out = tmp_path / "catalogue.json"
    result = CliRunner().invoke(app, [
        "data", "add", "sib200/mlt_Latn/train.tsv", str(data / "sib200/mlt_Latn/dev.tsv"), "--dataset", "sib200",
        "--language", "mlt_Latn", "--task", "topic", "--license", "CC BY-SA 4.0", "--source-repo", "dadelani/sib-200",
        "--commit", COMMIT, "--data-dir", str(data), "--catalogue", str(out)])
    assert result.exit_code == 0, result.output
    manifest = {m["path"]: m for m in json.loads((data / "MANIFEST.json").read_text())}
    train = manifest["sib200/mlt_Latn/train.tsv"]
    body = (data / "sib200/mlt_Latn/train.tsv").read_bytes()
    assert train["sha256"] == hashlib.sha256(body).hexdigest() and train["bytes"] == len(body)
    assert train["split"] == "train" and manifest["sib200/mlt_Latn/dev.tsv"]["split"] == "dev"
    assert train["counts"] == {"lines": 3, "non_empty_lines": 2} and train["source_path"] == train["path"]
    cat = json.loads(out.read_text())
    assert [f["path"] for f in cat["files"]] == ["sib200/mlt_Latn/dev.tsv", "sib200/mlt_Latn/train.tsv"]
    assert cat["files"][1]["url"].endswith(f"/{COMMIT}/sib200/mlt_Latn/train.tsv")
    assert "wrote 2 entries" in result.output
    # again: replaced, not duplicated
    assert CliRunner().invoke(app, [
        "data", "add", "sib200/mlt_Latn/train.tsv", "--dataset", "sib200", "--language", "mlt_Latn", "--task",
        "topic", "--license", "CC BY-SA 4.0", "--source-repo", "dadelani/sib-200", "--commit", COMMIT,
        "--data-dir", str(data), "--catalogue", str(out)]).exit_code == 0
    assert len(json.loads((data / "MANIFEST.json").read_text())) == 2


@pytest.mark.parametrize("args,message", [
    (["--dataset", "newset"], "dataset 'newset' has no entry in"),
    (["--language", "mlt"], "unknown language 'mlt'"),
    (["--commit", "abc"], "give the full 40-hex commit"),
])
def test_data_add_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("x\n")
    base = {"--dataset": "sib200", "--language": "mlt_Latn", "--task": "topic", "--license": "MIT",
            "--source-repo": "a/b", "--commit": COMMIT, "--split": "train"}
    base.update(dict(zip(args[::2], args[1::2])))
    result = CliRunner().invoke(app, ["data", "add", "notes.txt", "--data-dir", str(data),
                                      "--catalogue", str(tmp_path / "c.json"),
                                      *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2 and message in result.output
    assert not (data / "MANIFEST.json").exists() and not (tmp_path / "c.json").exists()
