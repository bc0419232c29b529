"""What an http(s) URL is, for every URL the worker is given: one rule for the settings, the frames and the payloads.

Stricter than any one parser, so that every parser on the way (urllib's, httpx's, the resolver's) reads the same
scheme, host and port from an accepted URL: printable ASCII only, no backslash, a host that is a DNS name, a
dotted-quad IPv4 address in its one canonical form (octal, hex and short forms such as `0177.0.0.1` or `127.1` are
read differently by different parsers) or a bracketed IPv6 address without a zone, and a port from 1 to 65535.
"""

import ipaddress
import re
from dataclasses import dataclass

MAX_URL_LENGTH = 8192
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>[/?#].*)?", re.DOTALL)
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"0[xX][0-9A-Fa-f]*|[0-9]+")  # a last label like this makes a host an IPv4 address
_CANONICAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_USERINFO = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:%-]*")


@dataclass(frozen=True)
class HttpUrl:
    scheme: str  # "http" or "https"
    host: str  # lower case; an IPv6 address without its brackets
    port: int | None  # None: the scheme's own


def parse_http_url(url: str) -> HttpUrl:
    """The URL's scheme, host and port, or ValueError saying what makes it no http(s) URL the worker uses."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError("must be printable ASCII with no space (percent-encode the rest)")
    if "\\" in url:
        raise ValueError("must not hold a backslash")
    match = _URL.fullmatch(url)
    if match is None or match["scheme"].lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    userinfo, _, hostport = match["authority"].rpartition("@")
    if not _USERINFO.fullmatch(userinfo):
        raise ValueError("has a malformed user part")
    host, port = _host_and_port(hostport)
    return HttpUrl(match["scheme"].lower(), host, port)


def _host_and_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        address, bracket, port_text = hostport[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ValueError("has a malformed IPv6 host")
        return _ipv6(address), _port(port_text[1:]) if port_text else None
    host, colon, port_text = hostport.partition(":")
    return _host(host), _port(port_text) if colon else None


def _host(host: str) -> str:
    if not host:
        raise ValueError("has no host")
    labels = host.rstrip(".").split(".") if host != "." else [""]
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        if (
            host.endswith(".")
            or len(labels) != 4
            or not all(_CANONICAL_OCTET.fullmatch(label) and int(label) < 256 for label in labels)
        ):
            raise ValueError(f"host {host[:64]!r} is not a dotted-quad IPv4 address (a.b.c.d, no leading zeros)")
        return host
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"host {host[:64]!r} is not a DNS name")
    return host.lower()


def _ipv6(address: str) -> str:
    try:
        if "%" in address:
            raise ValueError
        return str(ipaddress.IPv6Address(address))
    except ValueError:
        raise ValueError(f"host [{address[:64]}] is not an IPv6 address (zones are refused)") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text[:16]!r} is not a number from 1 to 65535")
    return int(text)


def http_url(url: str) -> str:
    """`url` itself when it is an http(s) URL the worker uses (a pydantic validator); ValueError saying why not."""
    parse_http_url(url)
    return url
