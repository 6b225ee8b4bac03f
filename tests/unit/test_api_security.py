"""Tokens, API keys and rate limits of the API, without a server."""

import time

import pytest

from api.errors import TooManyRequests
from api.ratelimit import RateLimit
from api.security import InvalidToken, api_key_hash, api_key_prefix, issue_token, new_api_key, read_token
from cropai.accounts import hash_password, verify_password
from cropai.config import Settings


@pytest.fixture
def token_settings() -> Settings:
    return Settings(_env_file=None)


def test_access_token_round_trip_gives_the_user(token_settings: Settings) -> None:
    assert read_token(token_settings, issue_token(token_settings, 42, "access").token, "access") == 42


def test_a_token_is_only_good_for_its_own_type(token_settings: Settings) -> None:
    refresh = issue_token(token_settings, 7, "refresh").token
    with pytest.raises(InvalidToken, match="refresh token cannot be used as a access token"):
        read_token(token_settings, refresh, "access")


def test_tampered_and_garbage_tokens_are_invalid(token_settings: Settings) -> None:
    token = issue_token(token_settings, 7, "access").token
    head, body, signature = token.split(".")
    with pytest.raises(InvalidToken):
        read_token(token_settings, f"{head}.{body}.{signature[::-1]}", "access")
    with pytest.raises(InvalidToken):
        read_token(token_settings, "not-a-jwt", "access")


def test_refresh_tokens_outlive_access_tokens(token_settings: Settings) -> None:
    access = issue_token(token_settings, 1, "access").expires_at
    refresh = issue_token(token_settings, 1, "refresh").expires_at
    assert (refresh - access).days >= token_settings.refresh_token_days - 1


def test_api_keys_are_random_prefixed_and_hashed() -> None:
    first, second = new_api_key(), new_api_key()
    assert first.key != second.key and first.key.startswith("cak_")
    assert api_key_prefix(first.key) == first.prefix and len(first.prefix) == 8
    assert first.key_hash == api_key_hash(first.key) and first.key not in first.key_hash
    assert api_key_prefix("Bearer-something") is None and api_key_prefix("cak_short_x") is None


def test_passwords_hash_with_argon2_and_verify() -> None:
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert verify_password("correct horse battery staple", hashed)
    assert not verify_password("wrong", hashed) and not verify_password("anything", None)


def test_rate_limit_refuses_past_the_limit_and_says_when_to_retry() -> None:
    limit = RateLimit("attempts", per_minute=2)
    limit.hit("a")
    limit.hit("a")
    with pytest.raises(TooManyRequests) as refused:
        limit.hit("a")
    assert 1 <= refused.value.retry_after_s <= 60
    limit.hit("b")  # other keys are counted apart


def test_rate_limit_window_slides(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    limit = RateLimit("attempts", per_minute=1)
    limit.hit("a")
    now[0] += 61
    limit.hit("a")  # the first hit has left the window
