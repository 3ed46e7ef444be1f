"""The command line as a new user meets it: flags look like flags, the grid file has one name."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app


@pytest.mark.parametrize("command", [["eval"], ["results"], ["compress"], ["bench"], ["data", "fetch"]])
def test_boolean_options_are_plain_flags_in_the_help(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output, result.output


@pytest.mark.parametrize("command", [["eval"], ["bench"], ["compress"], ["data", "list"]])
@pytest.mark.parametrize("name", ["--models", "--grid"])
def test_the_grid_file_option_has_both_names_everywhere(tmp_path, command, name):
    result = CliRunner().invoke(app, [*command, name, str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path}: is a directory, not a grid file" in result.output
