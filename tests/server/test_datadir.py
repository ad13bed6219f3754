"""datadir.locate: which folder under --data holds the library, on folders made by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from camroll.server.datadir import Found, locate


@pytest.fixture(autouse=True)
def _sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMROLL_DATABASE_URL", raising=False)


def test_a_servers_own_data_dir_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "camroll.db").write_bytes(b"")
    (tmp_path / "server").mkdir()  # even beside a folder of that name
    assert locate(tmp_path).data_dir == tmp_path
    assert locate(tmp_path).found is Found.LIBRARY


def test_the_all_in_one_library_is_in_server(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "camroll.db").write_bytes(b"")
    (tmp_path / "agent").mkdir()
    assert locate(tmp_path).data_dir == tmp_path / "server"
    assert locate(tmp_path / "server").data_dir == tmp_path / "server"


@pytest.mark.parametrize("entries", [[], ["lost+found/"], [".DS_Store"], ["server.lock"]])
def test_new_or_empty_folders_may_become_a_library(tmp_path: Path, entries: list[str]) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for name in entries:
        (d / name.rstrip("/")).mkdir() if name.endswith("/") else (d / name).write_bytes(b"")
    assert locate(d).found is Found.NEW
    assert locate(tmp_path / "missing").found is Found.NEW


def test_a_folder_of_other_things_never_becomes_one(tmp_path: Path) -> None:
    (tmp_path / "IMG_0001.jpg").write_bytes(b"x")
    where = locate(tmp_path)
    assert where.found is Found.OTHER
    assert "not empty" in where.refusal(command="camroll serve")
    (tmp_path / "f").write_bytes(b"")
    assert "is a file" in locate(tmp_path / "f").refusal(command="camroll admin jobs")


def test_an_external_database_is_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMROLL_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/camroll")
    assert locate(tmp_path / "new").found is Found.LIBRARY
    (tmp_path / "up" / "server" / "blobs").mkdir(parents=True)
    assert locate(tmp_path / "up").data_dir == tmp_path / "up" / "server"
