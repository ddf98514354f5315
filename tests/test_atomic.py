"""binlearn.atomic: a write is all or nothing."""

import pytest

from binlearn.atomic import atomic_write, atomic_write_text, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "artefact.bin"
    atomic_write_text(path, "old")

    def half_then_fail(handle):
        handle.write(b"half of the new")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artefact.bin"]


def test_writes_create_parents_and_replace_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "meta.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    atomic_write_text(path, "x")
    assert path.read_text() == "x"
    assert sorted(p.name for p in path.parent.iterdir()) == ["meta.json"]
