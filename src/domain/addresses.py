"""Where a job's URLs may connect: public addresses, and the hosts the operator allows."""

import ipaddress
from dataclasses import dataclass

from domain.untrusted import loggable

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
        where = f"{address} is" if _same_host(host, address) else f"host {loggable(host, 100)} resolves to"
        return f"{where} a {kind} address, refused (the operator can allow it with {ALLOW_VARIABLE})"


def non_public_kind(address: IpAddress) -> str | None:
    """What makes `address` not public (loopback, private, ...); None for a public address. An IPv6 address that
    carries an IPv4 one (mapped, 6to4, Teredo, NAT64, IPv4-compatible) is judged by the IPv4 address it reaches."""
    carried: list[IpAddress] = [*carried_ipv4(address)] if isinstance(address, ipaddress.IPv6Address) else []
    for judged in carried or [address]:
        if (kind := _kind(judged)) is not None:
            return kind
    return None


def carried_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to, by the transition scheme its prefix names."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:  # 2002::/16
        return [address.sixtofour]
    if address.teredo is not None:  # 2001::/32: the relay's server, and the client the packets go to
        return list(address.teredo)
    if address in _NAT64:  # 64:ff9b::/96, the well-known NAT64 prefix
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # ::a.b.c.d, deprecated; not :: or ::1 themselves
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def _kind(address: IpAddress) -> str | None:
    for kind, test in _KINDS:
        if getattr(address, test):
            return kind
    return None if address.is_global else "non-public"


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


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
