"""Command-line addresses: PORT, HOST:PORT, [IPv6]:PORT, and a clear error for anything else."""

from __future__ import annotations

import pytest

from streams.address import format_address, parse_address


@pytest.mark.parametrize(("text", "expect"), [
    ("39539", ("127.0.0.1", 39539)),  # a bare number is a port here, never a host
    ("127.0.0.1:39539", ("127.0.0.1", 39539)),
    ("192.168.1.20:9000", ("192.168.1.20", 9000)),
    ("localhost:8765", ("localhost", 8765)),
    ("studio-pc.local:39539", ("studio-pc.local", 39539)),
    ("[::1]:39539", ("::1", 39539)),
    ("[fe80::0001]:1", ("fe80::1", 1)),
    (" 8765 ", ("127.0.0.1", 8765)),
])
def test_accepted_forms(text: str, expect: tuple[str, int]) -> None:
    assert parse_address(text) == expect


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty address"),
    ("myhost", "has no port"),
    (":39539", "has no host"),
    ("::1:39539", r"in brackets, e\.g\. \[::1\]:39539"),
    ("[::1]39539", r"written \[ADDRESS\]:PORT"),
    ("[nope]:1", "not an IPv6 address"),
    ("host:port", "not a number"),
    ("host:-1", "not a number"),
    ("host:70000", r"out of range 1\.\.65535"),
    ("host:0", r"out of range 1\.\.65535"),
    ("12345:80", "not an IPv4 address"),  # inet_aton would read this as 0.0.48.57
    ("10.1:80", "not an IPv4 address"),  # ... and this as 10.0.0.1
    ("999.1.1.1:80", "not an IPv4 address"),
    ("bad_host:80", "not an IPv4 address"),
    ("-x.com:80", "not an IPv4 address"),
])
def test_everything_else_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_address(text)
    assert "\n" not in str(err.value)


def test_bind_addresses_may_ask_for_any_free_port() -> None:
    assert parse_address("0", allow_zero=True) == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:0", allow_zero=True) == ("0.0.0.0", 0)


@pytest.mark.parametrize("text", ["127.0.0.1:5", "[::1]:5", "host.example:5"])
def test_format_round_trips(text: str) -> None:
    assert format_address(*parse_address(text)) == text
