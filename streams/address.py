"""Network addresses given on the command line: ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``, nothing else.

A bare number is a port on this machine (``127.0.0.1``), never a host: ``--osc 39539`` once resolved
"39539" as the IPv4 address 0.0.154.115 and sent the stream off the machine. Hosts are IPv4 dotted quads,
bracketed IPv6 literals or DNS names; anything else (a bare host, an empty host, an unbracketed IPv6
address, a numeric "host" that C's ``inet_aton`` would read as an integer address) is a one-line error.
"""

from __future__ import annotations

import ipaddress
import re

#: Where a bare ``PORT`` goes (and what the servers bind unless told otherwise).
LOCALHOST = "127.0.0.1"

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_FORMS = "give PORT (meaning 127.0.0.1:PORT), HOST:PORT or [IPv6]:PORT"


def _port(text: str, whole: str, allow_zero: bool) -> int:
    if not text.isdigit():
        raise ValueError(f"port in {whole!r} is not a number; {_FORMS}")
    port = int(text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"port {port} in {whole!r} is out of range {low}..65535")
    return port


def _check_host(host: str, whole: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    # a DNS name: valid labels, and the last one not all digits (so "10.1" or "12345" is never a name that
    # the resolver would quietly turn into 10.0.0.1 or 0.0.48.57)
    if len(host) <= 253 and all(_LABEL.match(lb) for lb in labels) and not labels[-1].isdigit():
        return host
    raise ValueError(f"{host!r} in {whole!r} is not an IPv4 address, [IPv6] address or host name; {_FORMS}")


def parse_address(text: str, *, allow_zero: bool = False) -> tuple[str, int]:
    """Parse ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` into ``(host, port)``.

    Args:
        text: what the user wrote.
        allow_zero: accept port 0 ("any free port"), for addresses a server binds.

    Raises:
        ValueError: anything else, with a one-line reason naming the accepted forms.
    """
    s = text.strip()
    if not s:
        raise ValueError(f"empty address; {_FORMS}")
    if s.isdigit():
        return LOCALHOST, _port(s, text, allow_zero)
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or not s[end + 1 :].startswith(":"):
            raise ValueError(f"{text!r}: an IPv6 address is written [ADDRESS]:PORT")
        inner = s[1:end]
        try:
            host = str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise ValueError(f"{inner!r} in {text!r} is not an IPv6 address") from None
        return host, _port(s[end + 2 :], text, allow_zero)
    if s.count(":") > 1:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:39539")
    host, sep, port_s = s.partition(":")
    if not sep:
        raise ValueError(f"{text!r} has no port; {_FORMS}")
    if not host:
        raise ValueError(f"{text!r} has no host; {_FORMS}")
    return _check_host(host, text), _port(port_s, text, allow_zero)


def format_address(host: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets (the inverse of :func:`parse_address`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
