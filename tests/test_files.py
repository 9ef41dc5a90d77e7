"""memoria.files.atomic_write: a reader sees the old file or the new one, never a part of one."""

import json

import pytest

from memoria.files import atomic_write


def test_atomic_write_replaces_the_file_when_the_block_ends(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with atomic_write(path) as f:
        json.dump({"accuracy": 1.0}, f)
        assert path.read_text() == "old"  # not yet replaced
    assert json.loads(path.read_text()) == {"accuracy": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_write_leaves_the_old_file_and_no_temporary_when_the_block_fails(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_write_in_binary_mode_and_bad_modes(tmp_path):
    with atomic_write(tmp_path / "a.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(tmp_path / "b", "a"):
            pass


def test_atomic_write_keeps_the_permissions_a_plain_write_gives(tmp_path):
    plain, atomic = tmp_path / "plain", tmp_path / "atomic"
    plain.write_text("x")
    with atomic_write(atomic) as f:
        f.write("x")
    assert atomic.stat().st_mode == plain.stat().st_mode
    atomic.chmod(0o640)
    with atomic_write(atomic) as f:
        f.write("y")
    assert atomic.stat().st_mode & 0o777 == 0o640
