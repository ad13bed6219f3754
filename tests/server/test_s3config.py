"""``CAMROLL_STORAGE_URL`` and the S3 client made from the standard AWS configuration (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from camroll.server.settings import Settings
from camroll.server.storage.s3config import (
    LocalLocation,
    S3Location,
    StorageConfigError,
    make_client,
    parse_storage_url,
)


@pytest.mark.parametrize(("url", "want"), [
    (None, LocalLocation()),
    ("", LocalLocation()),
    ("  ", LocalLocation()),
    ("file:///srv/camroll/blobs", LocalLocation(Path("/srv/camroll/blobs"))),
    ("file://localhost/srv/x%20y", LocalLocation(Path("/srv/x y"))),
    ("s3://photos", S3Location("photos", "")),
    ("s3://photos/", S3Location("photos", "")),
    ("s3://photos/camroll", S3Location("photos", "camroll")),
    ("s3://photos/a/b/c/", S3Location("photos", "a/b/c")),
    ("S3://my.bucket-1/x", S3Location("my.bucket-1", "x")),
])
def test_storage_urls(url: str | None, want: object) -> None:
    assert parse_storage_url(url) == want


@pytest.mark.parametrize(("url", "says"), [
    ("https://s3.amazonaws.com/photos", "Give the bucket name, not the endpoint"),
    ("/srv/blobs", "neither s3://BUCKET[/PREFIX] nor file:///PATH"),
    ("gs://photos", "neither s3://"),
    ("file://relative/path", "must be local"),
    ("s3://", "names no bucket"),
    ("s3://ab", "is not a bucket name"),
    ("s3://bad*name", "is not a bucket name"),
    ("s3://key:secret@photos", "AWS_ACCESS_KEY_ID"),
    ("s3://photos:9000/x", "AWS_ENDPOINT_URL"),
    ("s3://photos/a//b", "single slashes"),
    ("s3://photos/../etc", "single slashes"),
    ("s3://photos/x?region=eu", "query"),
])
def test_bad_storage_urls_name_the_problem_and_the_fix(url: str, says: str) -> None:
    with pytest.raises(StorageConfigError, match="CAMROLL_STORAGE_URL") as err:
        parse_storage_url(url)
    assert says in str(err.value)


def test_settings_read_the_url_and_a_file_url_moves_the_local_store(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMROLL_STORAGE_URL", f"file://{tmp_path}/elsewhere")
    s = Settings.for_data_dir(tmp_path / "data")
    assert s.storage == LocalLocation(tmp_path / "elsewhere") and s.blobs_dir == tmp_path / "elsewhere"
    monkeypatch.setenv("CAMROLL_STORAGE_URL", "s3://photos/p")
    monkeypatch.setenv("CAMROLL_LOCAL_COPY_MAX", "2GiB")
    s = Settings.for_data_dir(tmp_path / "data")
    assert s.storage == S3Location("photos", "p") and s.local_copy_max == 2 * 2**30
    monkeypatch.setenv("CAMROLL_LOCAL_COPY_MAX", "lots")
    with pytest.raises(ValueError, match="CAMROLL_LOCAL_COPY_MAX"):
        Settings.for_data_dir(tmp_path / "data")


@pytest.fixture
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No AWS setting from the developer's machine; config files in tmp_path."""
    import os

    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def _config(client: object) -> object:
    return client.meta.config  # type: ignore[attr-defined]


def test_the_client_follows_the_standard_variables(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.us-west-004.backblazeb2.com")
    monkeypatch.setenv("AWS_REGION", "us-west-004")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    c = make_client(pool_size=7)
    assert c.meta.endpoint_url == "https://s3.us-west-004.backblazeb2.com"
    assert c.meta.region_name == "us-west-004"
    cfg = c.meta.config
    assert cfg.max_pool_connections == 7 and cfg.connect_timeout == 10 and cfg.read_timeout == 60
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 5}
    assert c._request_signer._credentials.access_key == "k"
    # The service-specific endpoint wins, as in every AWS SDK.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.eu-central-003.backblazeb2.com")
    assert make_client().meta.endpoint_url == "https://s3.eu-central-003.backblazeb2.com"
    # Retry settings the operator made are kept.
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    assert make_client().meta.config.retries == {"mode": "adaptive", "total_max_attempts": 9}


def test_the_client_follows_a_profile_in_the_aws_files(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (aws_env / "config").write_text(
        "[profile nas]\nregion = eu-west-1\nendpoint_url = http://nas.lan:8333\ns3 =\n    addressing_style = path\n")
    (aws_env / "credentials").write_text("[nas]\naws_access_key_id = nk\naws_secret_access_key = ns\n")
    monkeypatch.setenv("AWS_PROFILE", "nas")
    c = make_client()
    assert c.meta.endpoint_url == "http://nas.lan:8333" and c.meta.region_name == "eu-west-1"
    assert c._request_signer._credentials.access_key == "nk"
    # Path style from the profile: the bucket goes in the path, not the host name.
    url = c.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "k"})
    assert url.startswith("http://nas.lan:8333/photos/k")
    # AWS_S3_ADDRESSING_STYLE overrides it.
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "virtual")
    url = make_client().generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "k"})
    assert url.startswith("http://photos.nas.lan:8333/k")


def test_bad_client_settings_name_the_fix(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "missing")
    with pytest.raises(StorageConfigError, match="AWS_PROFILE"):
        make_client()
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "sideways")
    with pytest.raises(StorageConfigError, match="auto, path, virtual"):
        make_client()
    monkeypatch.delenv("AWS_S3_ADDRESSING_STYLE")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "not a url")
    with pytest.raises(StorageConfigError, match="AWS_ENDPOINT_URL"):
        make_client()


@pytest.mark.parametrize(("endpoint", "name"), [
    (None, "AWS S3"),
    ("https://s3.us-west-004.backblazeb2.com", "Backblaze B2"),
    ("https://s3.eu-central-2.wasabisys.com", "Wasabi"),
    ("https://0123abcd.r2.cloudflarestorage.com", "Cloudflare R2"),
    ("https://eu-002.s3.synologyc2.net", "Synology C2"),
    ("http://nas.lan:9000", "The S3 server at http://nas.lan:9000"),
])
def test_messages_name_the_provider(endpoint: str | None, name: str) -> None:
    from camroll.server.storage.s3 import provider_name

    assert provider_name(endpoint) == name
