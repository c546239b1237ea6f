"""Inputs and outputs in local folders and in real blob containers (Azurite) through prefect-azure."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from infra.errors import BackendError, ConfigError, MissingResourceError
from infra.settings import load_settings
from infra.storage import BlobLocation, Storage, parse_location


@pytest.fixture
def blob_storage(azurite: str, tmp_path: Path) -> tuple[Storage, BlobServiceClient]:
    client = BlobServiceClient.from_connection_string(azurite)
    for name in ("st-input", "st-output"):
        if not client.get_container_client(name).exists():
            client.create_container(name)
    return Storage(load_settings(home=tmp_path / "home", blob_connection_string=azurite)), client


class TestLocations:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("blob://input/a/b.csv", BlobLocation("input", "a/b.csv")),
            ("blob://output", BlobLocation("output", "")),
            ("blob://output/prefix/", BlobLocation("output", "prefix")),
            ("data/in.csv", Path("data/in.csv")),
        ],
    )
    def test_parse(self, text: str, expected: object) -> None:
        assert parse_location(text) == expected

    def test_blob_without_container(self) -> None:
        with pytest.raises(ConfigError, match=r"blob://<container>/<path>"):
            parse_location("blob:///x.csv")


class TestLocal:
    def test_folder_gives_its_csv_files_sorted(self, tmp_path: Path) -> None:
        for name in ("b.csv", "a.csv", "notes.txt"):
            (tmp_path / name).write_text("x")
        storage = Storage(load_settings(home=tmp_path / "home"))
        assert [p.name for p in storage.fetch(tmp_path, tmp_path / "into")] == ["a.csv", "b.csv"]

    def test_missing_path(self, tmp_path: Path) -> None:
        with pytest.raises(MissingResourceError, match="no such file or folder"):
            Storage(load_settings(home=tmp_path / "home")).fetch(tmp_path / "nope.csv", tmp_path)

    def test_publish_copies_under_the_name(self, tmp_path: Path) -> None:
        source = tmp_path / "scored.csv"
        source.write_text("a,score\n1,2\n")
        where = Storage(load_settings(home=tmp_path / "home")).publish(source, tmp_path / "out", "2026-01-02/x_1.csv")
        assert Path(where).read_text() == "a,score\n1,2\n"
        assert source.exists()


class TestBlob:
    def test_download_one_blob_and_a_prefix(
        self, blob_storage: tuple[Storage, BlobServiceClient], tmp_path: Path
    ) -> None:
        storage, client = blob_storage
        for name in ("set/one.csv", "set/two.csv", "set/readme.txt", "other.csv"):
            client.get_blob_client("st-input", name).upload_blob(f"data of {name}".encode(), overwrite=True)
        single = storage.fetch(BlobLocation("st-input", "other.csv"), tmp_path / "a")
        assert [p.read_text() for p in single] == ["data of other.csv"]
        folder = storage.fetch(BlobLocation("st-input", "set"), tmp_path / "b")
        assert [p.relative_to(tmp_path / "b").as_posix() for p in folder] == ["set/one.csv", "set/two.csv"]

    def test_missing_blob(self, blob_storage: tuple[Storage, BlobServiceClient], tmp_path: Path) -> None:
        with pytest.raises(MissingResourceError, match=r"no CSV blob at blob://st-input/absent\.csv"):
            blob_storage[0].fetch(BlobLocation("st-input", "absent.csv"), tmp_path)

    def test_publish_uploads(self, blob_storage: tuple[Storage, BlobServiceClient], tmp_path: Path) -> None:
        storage, client = blob_storage
        source = tmp_path / "scored.csv"
        source.write_bytes(b"a,score\n1,2\n")
        where = storage.publish(source, BlobLocation("st-output", "runs"), "2026-01-02/out_10_00_00_000.csv")
        assert where == "blob://st-output/runs/2026-01-02/out_10_00_00_000.csv"
        assert (
            client.get_blob_client("st-output", "runs/2026-01-02/out_10_00_00_000.csv").download_blob().readall()
            == b"a,score\n1,2\n"
        )

    def test_publish_to_a_missing_container_keeps_the_file_and_says_where(
        self, blob_storage: tuple[Storage, BlobServiceClient], tmp_path: Path
    ) -> None:
        source = tmp_path / "scored.csv"
        source.write_bytes(b"a\n")
        with pytest.raises(BackendError, match=f"the scored file is kept at {source}"):
            blob_storage[0].publish(source, BlobLocation("no-such-container", ""), "x.csv")
        assert source.read_bytes() == b"a\n"

    def test_blob_location_without_credentials_names_the_settings(self, tmp_path: Path) -> None:
        storage = Storage(load_settings(home=tmp_path / "home"))
        with pytest.raises(ConfigError, match="MLOPS_BLOB_CONNECTION_STRING"):
            storage.fetch(BlobLocation("input", "x.csv"), tmp_path)


def test_credentials_from_a_saved_prefect_block(prefect_server: str, azurite: str, tmp_path: Path) -> None:
    """MLOPS_BLOB_CREDENTIALS_BLOCK names a block saved on the Prefect server; the settings hold no secret."""
    from prefect_azure import AzureBlobStorageCredentials

    AzureBlobStorageCredentials(connection_string=azurite).save("test-blob-credentials", overwrite=True, _sync=True)
    client = BlobServiceClient.from_connection_string(azurite)
    if not client.get_container_client("st-block").exists():
        client.create_container("st-block")
    client.get_blob_client("st-block", "in.csv").upload_blob(b"a\n1\n", overwrite=True)
    settings = load_settings(home=tmp_path / "home", blob_credentials_block="test-blob-credentials")
    assert settings.blob_connection_string is None
    files = Storage(settings).fetch(BlobLocation("st-block", "in.csv"), tmp_path / "into")
    assert [p.read_bytes() for p in files] == [b"a\n1\n"]
