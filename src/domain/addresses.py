"""Where a job's URLs may connect: public addresses, and the hosts the operator allows."""

import ipaddress
from dataclasses import dataclass

from domain.untrusted import shown

ALLOW_VARIABLE = "CASOLA_PAYLOAD_ALLOWED_HOSTS"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AllowedHost:
    """One `host[:port]` entry: a name or an address, any port unless one is given."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        return _same_host(self.host, host) and self.port in (None, port)


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses always; loopback, link-local, private and other non-public ones only when allowed."""

    allowed: tuple[AllowedHost, ...] = ()

    def refusal(self, host: str, port: int, address: str) -> str | None:
        """Why a URL naming `host:port` may not connect to `address`; None when it may."""
        if any(entry.matches(host, port) or entry.matches(address, port) for entry in self.allowed):
            return None
        kind = non_public_kind(ipaddress.ip_address(address.split("%")[0]))
        if kind is None:
            return None
        where = f"{address} is" if _same_host(host, address) else f"host {shown(host, 100)} resolves to"
        return f"{where} a {kind} address, refused (the operator can allow it with {ALLOW_VARIABLE})"


def non_public_kind(address: IpAddress) -> str | None:
    """What makes `address` not public (loopback, private, ...); None for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, test in _KINDS:
        if getattr(address, test):
            return kind
    return None if address.is_global else "non-public"


_KINDS = (
    ("loopback", "is_loopback"),
    ("link-local", "is_link_local"),
    ("unspecified", "is_unspecified"),
    ("multicast", "is_multicast"),
    ("reserved", "is_reserved"),
    ("private", "is_private"),
)


def parse_allowed_hosts(text: str) -> tuple[AllowedHost, ...]:
    """Comma-separated `host[:port]` entries, an IPv6 address in brackets before a port; ValueError names a bad one."""
    return tuple(_allowed_host(entry.strip()) for entry in text.split(",") if entry.strip())


def _allowed_host(entry: str) -> AllowedHost:
    host, port = entry, None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{entry!r} is not host[:port]")
        if rest:
            port = _port(entry, rest[1:])
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
        port = _port(entry, port_text)
    if not host or any(character in host for character in "/@ []"):
        raise ValueError(f"{entry!r} is not host[:port]")
    return AllowedHost(host.lower().rstrip("."), port)


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def _same_host(first: str, second: str) -> bool:
    first, second = first.lower().rstrip(".").strip("[]"), second.lower().rstrip(".").strip("[]")
    try:
        return ipaddress.ip_address(first) == ipaddress.ip_address(second)
    except ValueError:
        return first == second
