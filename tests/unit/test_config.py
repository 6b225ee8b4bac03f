from pathlib import Path

import pytest

from cropai.config import DEV_SECRET_KEY, Settings, load_settings
from cropai.errors import SettingsError


def test_defaults_keep_everything_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROPAI_HOME", str(tmp_path / "h"))
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'h' / 'cropai.db'}"
    assert settings.resolved_storage_url == str(tmp_path / "h" / "store")
    assert settings.dask_address == ""
    assert not settings.uses_s3


def test_s3_store_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_STORAGE_URL", "s3://crops/prod")
    monkeypatch.setenv("CROPAI_S3_ENDPOINT", "minio:9000")
    monkeypatch.setenv("CROPAI_S3_SECURE", "false")
    settings = load_settings()
    assert settings.uses_s3
    assert settings.s3_endpoint == "minio:9000"
    assert settings.s3_secure is False


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    # The autouse fixture has made tmp_path the working folder.
    (tmp_path / ".env").write_text("CROPAI_DASK_ADDRESS=tcp://scheduler:8786\n")
    assert load_settings().dask_address == "tcp://scheduler:8786"


def test_bad_value_names_the_variable_and_the_expected_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_S3_SECURE", "maybe")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "CROPAI_S3_SECURE='maybe'" in str(caught.value)
    assert "true or false" in str(caught.value)


def test_unknown_storage_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_STORAGE_URL", "gs://bucket")
    with pytest.raises(SettingsError, match=r"CROPAI_STORAGE_URL='gs://bucket'.*s3://bucket"):
        load_settings()


def test_production_refuses_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="CROPAI_SECRET_KEY must be set"):
        load_settings()


def test_production_refuses_a_short_secret_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", "hunter2")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_production_accepts_a_long_random_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", "x" * 48)
    assert load_settings().environment == "production"


def test_dev_runs_with_the_default_secret() -> None:
    assert Settings(_env_file=None).secret_key.get_secret_value() == DEV_SECRET_KEY
