"""What an ingestion run may read: the address rule for URLs, the roots for local paths,
the inbox for store keys."""

from pathlib import Path

import pytest

from cropai.config import Settings
from cropai.errors import InvalidInput
from cropai.source_bounds import SourceBounds, check_source, check_url

PUBLIC = "http://93.184.215.14/catalog.json"  # a literal public address: no DNS needed


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/catalog.json", "loopback"),
        ("http://localhost/catalog.json", "loopback"),
        ("http://[::1]/catalog.json", "loopback"),
        ("http://2130706433/catalog.json", "loopback"),  # 127.0.0.1 written as one number
        ("http://[::ffff:127.0.0.1]/catalog.json", "loopback"),
        ("http://169.254.169.254/latest/meta-data/?x=.json", "link-local"),
        ("http://[fe80::1]/catalog.json", "link-local"),
        ("http://10.0.0.1/catalog.json", "private"),
        ("https://172.16.5.4/catalog.json", "private"),
        ("http://192.168.1.10/catalog.json", "private"),
        ("http://[fc00::1]/catalog.json", "private"),
        ("http://0.0.0.0:8000/catalog.json", "unspecified"),
        ("http://224.0.0.1/catalog.json", "multicast"),
    ],
)
def test_urls_on_internal_addresses_are_refused(url: str, kind: str) -> None:
    with pytest.raises(InvalidInput, match=f"a {kind} address"):
        check_url(url, allow_private=False)


def test_a_public_address_is_allowed() -> None:
    check_url(PUBLIC, allow_private=False)


def test_allowing_private_hosts_lets_loopback_and_private_networks_through() -> None:
    check_url("http://127.0.0.1:8000/catalog.json", allow_private=True)
    check_url("http://10.0.0.1/catalog.json", allow_private=True)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/iam.json", "http://0.0.0.0/a.json", "http://224.0.0.1/a.json"]
)
def test_metadata_multicast_and_unspecified_addresses_are_never_allowed(url: str) -> None:
    with pytest.raises(InvalidInput, match="never read"):
        check_url(url, allow_private=True)


def test_refusing_a_private_host_names_the_setting_that_allows_it() -> None:
    with pytest.raises(InvalidInput, match="CROPAI_STAC_ALLOW_PRIVATE=true"):
        check_url("http://10.0.0.1/catalog.json", allow_private=False)


@pytest.mark.parametrize("url", ["file:///proc/self/environ", "ftp://93.184.215.14/a.json", "http:///a.json"])
def test_only_http_urls_with_a_host_are_read(url: str) -> None:
    with pytest.raises(InvalidInput, match="only http"):
        check_url(url, allow_private=True)


def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot resolve"):
        check_url("http://no-such-host.invalid/catalog.json", allow_private=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "s2").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "root"


def test_a_path_outside_the_roots_is_refused_naming_the_roots_and_the_setting(root: Path) -> None:
    bounds = SourceBounds(roots=(root.resolve(),))
    with pytest.raises(InvalidInput) as refused:
        bounds.local_path("/proc/self/environ")
    assert "CROPAI_INGEST_ROOTS" in str(refused.value) and str(root.resolve()) in str(refused.value)


@pytest.mark.parametrize("escape", ["s2/../../outside", "s2/link-out"])
def test_dot_dot_and_links_cannot_leave_a_root(root: Path, escape: str) -> None:
    (root / "s2" / "link-out").symlink_to(root.parent / "outside")
    with pytest.raises(InvalidInput, match="it resolves to"):
        SourceBounds(roots=(root.resolve(),)).local_path(root / escape)


def test_a_path_inside_a_root_resolves_to_its_real_path(root: Path) -> None:
    (root / "s2" / "here").symlink_to(root / "s2")
    assert SourceBounds(roots=(root.resolve(),)).local_path(root / "s2" / "here") == (root / "s2").resolve()


def test_no_roots_lets_any_path_through_as_given() -> None:
    assert SourceBounds(roots=None).local_path("/proc/self/environ") == Path("/proc/self/environ")


def test_server_bounds_read_the_roots_setting(root: Path) -> None:
    settings = Settings(ingest_roots=f" {root} ,, {root.parent / 'outside'}", _env_file=None)
    bounds = SourceBounds.for_server(settings)
    assert bounds.roots == (root.resolve(), (root.parent / "outside").resolve()) and not bounds.allow_private


def test_empty_roots_leave_only_the_inbox(root: Path) -> None:
    bounds = SourceBounds.for_server(Settings(_env_file=None))
    check_source("store:inbox/2025-05/", bounds)
    with pytest.raises(InvalidInput, match="none is set"):
        check_source(str(root), bounds)


@pytest.mark.parametrize("source", ["store:scenes/", "store:quarantine/", "store:inbox/../scenes/", "store:inbox"])
def test_only_the_inbox_of_the_store_may_be_a_source(source: str) -> None:
    with pytest.raises(InvalidInput, match="only the store's inbox"):
        check_source(source, SourceBounds(roots=()))


def test_other_url_schemes_are_refused_as_sources() -> None:
    with pytest.raises(InvalidInput, match="s3:// sources are not read"):
        check_source("s3://bucket/catalog.json", SourceBounds(roots=()))


def test_file_urls_are_local_paths(root: Path) -> None:
    bounds = SourceBounds(roots=(root.resolve(),))
    check_source(f"file://{root / 's2'}", bounds)
    with pytest.raises(InvalidInput, match="outside the folders"):
        check_source("file:///proc/self/environ", bounds)
