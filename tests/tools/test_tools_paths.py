"""Confinement: every path a tool touches must resolve inside the project folder."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagent_lab.tools.paths import (
    InvalidPath,
    PathOutsideProject,
    check_input,
    display_path,
    resolve_in_project,
)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    return root


def test_relative_path_joins_working_dir(project: Path) -> None:
    assert resolve_in_project("src/main.py", project) == project.resolve() / "src" / "main.py"


def test_absolute_path_inside_is_allowed(project: Path) -> None:
    target = str(project / "src" / "main.py")
    assert resolve_in_project(target, project) == project.resolve() / "src" / "main.py"


def test_nonexistent_path_inside_is_allowed(project: Path) -> None:
    assert resolve_in_project("new/dir/f.txt", project) == project.resolve() / "new/dir/f.txt"


def test_dotdot_escape_is_refused(project: Path) -> None:
    with pytest.raises(PathOutsideProject) as info:
        resolve_in_project("../secret.txt", project)
    assert info.value.path == "../secret.txt"
    assert info.value.resolved == project.resolve().parent / "secret.txt"
    assert "outside the project folder" in str(info.value)


def test_dotdot_that_comes_back_inside_is_allowed(project: Path) -> None:
    assert resolve_in_project("src/../../proj/src", project) == project.resolve() / "src"


def test_absolute_path_outside_is_refused(project: Path) -> None:
    with pytest.raises(PathOutsideProject):
        resolve_in_project("/etc/passwd", project)


def test_sibling_with_common_prefix_is_refused(project: Path) -> None:
    sibling = project.parent / "proj2"
    sibling.mkdir()
    with pytest.raises(PathOutsideProject):
        resolve_in_project(str(sibling / "x"), project)


def test_tilde_is_literal_and_stays_inside(project: Path) -> None:
    assert resolve_in_project("~/.ssh/id_rsa", project) == project.resolve() / "~/.ssh/id_rsa"


def test_symlinked_dir_pointing_outside_is_refused(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "docs").symlink_to(outside)
    with pytest.raises(PathOutsideProject) as info:
        resolve_in_project("docs/notes.txt", project)
    assert info.value.resolved == outside.resolve() / "notes.txt"


def test_dangling_symlink_pointing_outside_is_refused(project: Path, tmp_path: Path) -> None:
    (project / "out.txt").symlink_to(tmp_path / "does-not-exist.txt")
    with pytest.raises(PathOutsideProject):
        resolve_in_project("out.txt", project)


def test_symlink_inside_pointing_inside_resolves_to_target(project: Path) -> None:
    (project / "link.py").symlink_to(project / "src" / "main.py")
    assert resolve_in_project("link.py", project) == project.resolve() / "src" / "main.py"


def test_working_dir_given_through_a_symlink(project: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(project)
    assert resolve_in_project("src/main.py", alias) == project.resolve() / "src" / "main.py"


def test_nul_byte_is_rejected(project: Path) -> None:
    with pytest.raises(InvalidPath) as info:
        resolve_in_project("src/\x00main.py", project)
    assert not isinstance(info.value, PathOutsideProject)
    assert "NUL" in str(info.value)


def test_outside_error_is_a_value_error(project: Path) -> None:
    with pytest.raises(ValueError):
        resolve_in_project("/", project)


def test_display_path_is_project_relative(project: Path) -> None:
    root = project.resolve()
    assert display_path(root / "src" / "main.py", project) == "src/main.py"
    assert display_path(root, project) == "."


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "a", "b", "~", ""]), min_size=1, max_size=8))
def test_resolution_matches_lexical_normalization_without_symlinks(
    tmp_path_factory: pytest.TempPathFactory, segments: list[str]
) -> None:
    root = Path(os.path.realpath(tmp_path_factory.getbasetemp())) / "hyp-root"
    root.mkdir(exist_ok=True)
    rel = "/".join(segments)
    expected = Path(posixpath.normpath(posixpath.join(str(root), rel)))
    inside = expected == root or expected.is_relative_to(root)
    if inside:
        assert resolve_in_project(rel, root) == expected
    else:
        with pytest.raises(PathOutsideProject):
            resolve_in_project(rel, root)


SCHEMA = {
    "type": "object",
    "properties": {
        "file_path": {"type": "string", "minLength": 1},
        "limit": {"type": "integer", "minimum": 1},
        "flag": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["a", "b"]},
    },
    "required": ["file_path"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({"file_path": "x"}, None),
        ({}, "T: missing required field(s): file_path"),
        ({"file_path": "x", "bogus": 1}, "T: unknown field(s): bogus; allowed: "),
        ({"file_path": 3}, "T: field 'file_path' must be a string, got integer"),
        ({"file_path": "x", "limit": True}, "T: field 'limit' must be an integer, got boolean"),
        ({"file_path": "x", "limit": "5"}, "T: field 'limit' must be an integer, got string"),
        ({"file_path": "x", "limit": 0}, "T: field 'limit' must be >= 1, got 0"),
        ({"file_path": "x", "flag": 1}, "T: field 'flag' must be a boolean, got integer"),
        ({"file_path": "x", "mode": "c"}, "T: field 'mode' must be one of 'a', 'b', got 'c'"),
        ({"file_path": ""}, "T: field 'file_path' must not be empty"),
        (["file_path"], "T: input must be an object, got list"),
    ],
)
def test_check_input_messages(tool_input: object, message: str | None) -> None:
    result = check_input("T", tool_input, SCHEMA)
    if message is None:
        assert result is None
    else:
        assert result is not None and result.startswith(message)
