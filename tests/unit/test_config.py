import re
import secrets
from pathlib import Path

import pytest

from cropai.config import DEV_SECRET_KEY, Settings, byte_count, load_settings
from cropai.errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]


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
    with pytest.raises(SettingsError, match="CROPAI_SECRET_KEY is the public development default"):
        load_settings()


def env_example_secrets() -> dict[str, str]:
    """The values .env.example gives to every variable named like a password, secret or key."""
    pairs = re.findall(r"^(\w+)=(.*)$", (ROOT / ".env.example").read_text(), re.M)
    return {name: value for name, value in pairs if re.search("PASSWORD|SECRET|KEY", name)}


def test_env_example_has_secrets_to_check() -> None:
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "CROPAI_SECRET_KEY"} <= set(env_example_secrets())


@pytest.mark.parametrize("name", sorted(env_example_secrets()))
def test_production_refuses_every_placeholder_of_env_example_as_the_secret_key(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    placeholder = env_example_secrets()[name]
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", placeholder)
    with pytest.raises(SettingsError, match="CROPAI_SECRET_KEY is a placeholder") as caught:
        load_settings()
    assert placeholder not in str(caught.value)


@pytest.mark.parametrize("variable", ["CROPAI_S3_SECRET_KEY", "CROPAI_MONITORING_TOKEN"])
@pytest.mark.parametrize("name", sorted(env_example_secrets()))
def test_production_refuses_placeholders_for_the_other_secrets(
    monkeypatch: pytest.MonkeyPatch, variable: str, name: str
) -> None:
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv(variable, env_example_secrets()[name])
    with pytest.raises(SettingsError, match=f"{variable} is a placeholder"):
        load_settings()


def test_production_refuses_the_placeholder_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    password = env_example_secrets()["POSTGRES_PASSWORD"]
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("CROPAI_DATABASE_URL", f"postgresql+psycopg://cropai:{password}@postgres:5432/cropai")
    with pytest.raises(SettingsError, match="password in CROPAI_DATABASE_URL is a placeholder"):
        load_settings()


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("hunter2", "shorter than 32 characters"),
        ("x" * 48, "too easy to guess"),
        ("abcdefgh" * 6, "too easy to guess"),  # few distinct characters
        ("0123456789abcdefghijklm" * 2 + "012", "too easy to guess"),  # many distinct, but a pattern repeated
    ],
    ids=["short", "one-character", "few-distinct", "repeated-pattern"],
)
def test_production_refuses_short_and_guessable_secrets_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, secret: str, reason: str
) -> None:
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", secret)
    with pytest.raises(SettingsError, match=f"CROPAI_SECRET_KEY is {reason}") as caught:
        load_settings()
    assert secret not in str(caught.value)


@pytest.mark.parametrize("secret", [secrets.token_urlsafe(48), secrets.token_hex(32)], ids=["urlsafe", "hex"])
def test_production_accepts_a_long_random_secret(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("CROPAI_ENVIRONMENT", "production")
    monkeypatch.setenv("CROPAI_SECRET_KEY", secret)
    monkeypatch.setenv("CROPAI_S3_SECRET_KEY", secrets.token_urlsafe(24))
    assert load_settings().environment == "production"


def test_dev_runs_with_the_default_secret() -> None:
    assert Settings(_env_file=None).secret_key.get_secret_value() == DEV_SECRET_KEY


@pytest.mark.parametrize(
    ("size", "reason"), [("lots", "not a size such as 2GB"), ("100MB", "below 256 MB"), ("2 GiB/worker", "not a size")]
)
def test_a_worker_memory_that_is_no_size_or_too_small_is_refused(
    monkeypatch: pytest.MonkeyPatch, size: str, reason: str
) -> None:
    monkeypatch.setenv("CROPAI_WORKER_MEMORY", size)
    with pytest.raises(SettingsError, match=f"CROPAI_WORKER_MEMORY=.*{reason}"):
        load_settings()


def test_worker_memory_reads_sizes_as_dask_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROPAI_WORKER_MEMORY", "6GiB")
    assert load_settings().worker_memory == "6GiB"
    assert byte_count("2GB") == 2 * 10**9 and byte_count("700 MB") == 7 * 10**8 and byte_count("6GiB") == 6 * 2**30
