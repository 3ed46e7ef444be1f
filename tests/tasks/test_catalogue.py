"""The committed data catalogue: complete, consistent, with licences shown to the user.

These tests check properties of whatever the catalogue holds; its counts are pinned only in
tests/regression/snapshots/catalogue_counts.json (see tests/regression/test_catalogue_snapshot.py)."""
from __future__ import annotations

import json
import re

import pytest

from core.errors import UserError
from tasks.catalogue import dataset_info, entries_for, license_notice, load_catalogue


def test_every_file_has_provenance_checksum_and_a_source():
    cat = load_catalogue()
    assert cat.files and len({e.path for e in cat.files}) == len(cat.files)
    for e in cat.files:
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256) and e.bytes > 0 and e.license
        assert re.fullmatch(r"[0-9a-f]{40}", e.commit) and e.source_repo.count("/") == 1
        assert e.dataset in cat.datasets and e.language in cat.datasets[e.dataset].languages
        if e.derived:
            assert e.url is None and e.path.startswith("raw/")
        else:
            assert e.url == f"https://raw.githubusercontent.com/{e.source_repo}/{e.commit}/{e.source_paths[0]}"


def test_raw_files_are_derived_and_have_no_single_upstream():
    raw = entries_for(task="raw")
    assert raw and all(e.derived and e.url is None for e in raw)
    wiki = [e for e in raw if e.path == "raw/slk/wikigoldsk-wiki-text.txt"][0]
    assert len(wiki.source_paths) == 10


def test_entries_for_filters_and_hides_docs_unless_asked():
    ud = entries_for(dataset="ud/UD_Slovak-SNK")
    assert [e.split for e in ud] == ["dev", "test"]
    docs = entries_for(dataset="ud/UD_Slovak-SNK", split="doc")
    assert sorted(e.path.rsplit("/", 1)[1] for e in docs) == ["LICENSE.txt", "README.md"]
    assert len(entries_for(language="slk_Latn", include_docs=True)) == len(entries_for(language="slk_Latn")) + 4


def test_dataset_facts_and_non_commercial_flags():
    datasets = load_catalogue().datasets
    for name, v in datasets.items():
        assert v.non_commercial == (v.license_status == "non-commercial"), name
        assert v.license and v.languages, name
    nc = {k for k, v in datasets.items() if v.non_commercial}
    assert {"masakhaner2", "ud/UD_Estonian-EDT"} <= nc and "sib200" not in nc
    info = dataset_info("sib200")
    assert info.license == "CC BY-SA 4.0" and "EACL" in info.citation and info.commit.startswith("593cea8")
    with pytest.raises(UserError, match=r"unknown dataset 'wikigold' \(did you mean 'wikigoldsk'"):
        dataset_info("wikigold")


def test_license_notice_flags_non_commercial_and_unspecified():
    text = license_notice(["sib200", "masakhaner2", "wikigoldsk", "masakhaner2"])
    lines = text.splitlines()
    assert lines[0] == "Data licences (3 datasets):"
    assert "masakhaner2" in lines[1] and lines[1].endswith("CC BY-NC 4.0  [NON-COMMERCIAL]")
    assert "Non-commercial: masakhaner2" in text and "No stated licence: wikigoldsk" in text
    assert license_notice([]) == ""
    extra = license_notice(["my/hf"], extra={"my/hf": ("CC BY-NC 4.0", True)})
    assert "[NON-COMMERCIAL]" in extra


def test_catalogue_json_holds_no_data():
    from tasks.catalogue import CATALOGUE_FILE
    raw = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    assert set(raw) == {"about", "manifest_sha256", "datasets", "files"}
    assert CATALOGUE_FILE.stat().st_size < 400_000


@pytest.mark.real_data
def test_catalogue_is_up_to_date_with_the_manifest(real_data_dir, tmp_path):
    from tasks.build_catalogue import main
    manifest = real_data_dir / "MANIFEST.json"
    if not manifest.exists():
        pytest.skip(f"no MANIFEST.json in {real_data_dir}")
    assert main([str(manifest), "--check"]) == 0
    out = tmp_path / "catalogue.json"
    assert main([str(manifest), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["files"][0]["path"] == "masakhaner1/amh/dev.txt"
