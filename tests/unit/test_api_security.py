"""Tokens, API keys, rate limits and client addresses of the API, without a server."""

import logging
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from starlette.requests import Request

from api.errors import TooManyRequests
from api.proxies import client_address, trusted_proxies
from api.ratelimit import LoginLimits, RateLimit
from api.security import InvalidToken, api_key_hash, api_key_prefix, issue_token, new_api_key, read_token
from api.serve import proxy_options, warn_if_signed_with_dev_key
from api.ttlcache import TTLCache
from cropai.accounts import hash_password, verify_password
from cropai.config import Settings


@pytest.fixture
def token_settings() -> Settings:
    return Settings(_env_file=None)


def test_access_token_round_trip_gives_the_user_and_version(token_settings: Settings) -> None:
    claims = read_token(token_settings, issue_token(token_settings, 42, "access", version=3).token, "access")
    assert (claims.user_id, claims.version) == (42, 3)


def test_a_token_without_a_version_is_invalid(token_settings: Settings) -> None:
    now = datetime.now(UTC)
    unversioned = jwt.encode(
        {"iss": "cropai", "sub": "1", "typ": "access", "iat": now, "exp": now + timedelta(minutes=5), "jti": "x"},
        token_settings.secret_key.get_secret_value(),
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken, match="ver"):
        read_token(token_settings, unversioned, "access")


def test_a_token_is_only_good_for_its_own_type(token_settings: Settings) -> None:
    refresh = issue_token(token_settings, 7, "refresh", version=0).token
    with pytest.raises(InvalidToken, match="refresh token cannot be used as a access token"):
        read_token(token_settings, refresh, "access")


def test_tampered_and_garbage_tokens_are_invalid(token_settings: Settings) -> None:
    token = issue_token(token_settings, 7, "access", version=0).token
    head, body, signature = token.split(".")
    with pytest.raises(InvalidToken):
        read_token(token_settings, f"{head}.{body}.{signature[::-1]}", "access")
    with pytest.raises(InvalidToken):
        read_token(token_settings, "not-a-jwt", "access")


def test_refresh_tokens_outlive_access_tokens(token_settings: Settings) -> None:
    access = issue_token(token_settings, 1, "access", version=0).expires_at
    refresh = issue_token(token_settings, 1, "refresh", version=0).expires_at
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
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])  # the clock of the limits library's windows
    limit = RateLimit("attempts", per_minute=1)
    limit.hit("a")
    with pytest.raises(TooManyRequests):
        limit.hit("a")
    now[0] += 61
    limit.hit("a")  # the first hit has left the window


def request_from(peer: str, forwarded_for: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for is not None else []
    return Request({"type": "http", "method": "POST", "path": "/", "client": (peer, 40000), "headers": headers})


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    trusted = trusted_proxies(Settings(_env_file=None, trusted_proxies="10.0.0.5"))
    assert client_address(request_from("127.0.0.1", "198.51.100.7"), trusted) == "127.0.0.1"
    assert client_address(request_from("127.0.0.1", "198.51.100.7"), frozenset()) == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_gives_the_address_it_was_called_from() -> None:
    trusted = trusted_proxies(Settings(_env_file=None, trusted_proxies="10.0.0.5, 10.0.0.6"))
    # The client sent a made-up address of its own; the proxies appended the real ones.
    forged_then_real = request_from("10.0.0.6", "192.0.2.1, 203.0.113.9:51234, 10.0.0.5")
    assert client_address(forged_then_real, trusted) == "203.0.113.9"
    assert client_address(request_from("10.0.0.5"), trusted) == "10.0.0.5"


def test_login_limits_count_each_account_from_every_client() -> None:
    limits = LoginLimits.from_settings(Settings(_env_file=None, login_attempts_per_minute=2))
    limits.hit(request_from("192.0.2.1"), "Ana@Example.org")
    limits.hit(request_from("192.0.2.2"), "ana@example.org")
    with pytest.raises(TooManyRequests, match="login attempts"):
        limits.hit(request_from("192.0.2.3"), "ana@example.org ")


def test_login_limits_count_each_client_across_accounts() -> None:
    limits = LoginLimits.from_settings(Settings(_env_file=None, login_attempts_per_client_per_minute=3))
    for n in range(3):
        limits.hit(request_from("192.0.2.1"), f"user{n}@example.org")
    with pytest.raises(TooManyRequests, match="from your address"):
        limits.hit(request_from("192.0.2.1"), "user3@example.org")
    limits.hit(request_from("192.0.2.2"), "user3@example.org")  # another client has its own count


def test_uvicorn_reads_proxy_headers_only_from_the_trusted_proxies() -> None:
    assert proxy_options(Settings(_env_file=None)) == {"proxy_headers": False}
    behind_proxies = proxy_options(Settings(_env_file=None, trusted_proxies="10.0.0.6,10.0.0.5"))
    assert behind_proxies == {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.5", "10.0.0.6"]}


def test_serving_with_the_development_key_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cropai.serve"):
        warn_if_signed_with_dev_key(Settings(_env_file=None))
    assert "public development key" in caplog.text and "beyond this machine" in caplog.text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cached_users_expire_after_their_ttl_and_the_oldest_go_first_when_full() -> None:
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache(5.0, max_entries=2, clock=clock)
    cache.put(1, "ann")
    clock.now = 4.9
    assert cache.get(1) == "ann"
    clock.now = 5.0
    assert cache.get(1) is None  # a role change is seen within the TTL at most
    cache.put(1, "ann")
    cache.put(2, "bob")
    cache.get(1)
    cache.put(3, "cy")  # full: the least recently used (bob) makes room
    assert (cache.get(1), cache.get(2), cache.get(3)) == ("ann", None, "cy")
    cache.forget(1)
    assert cache.get(1) is None
