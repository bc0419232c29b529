"""Where a job's URLs may connect: public addresses, and the hosts the operator allows."""

import ipaddress
from dataclasses import dataclass

from domain.untrusted import loggable
from domain.urls import parse_http_url

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
    kind = next((kind for network, kind in _NOT_GLOBAL if address in network), None)
    if kind is None and isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "reserved"  # IANA's IPv6 address space: only 2000::/3 is allocated for global unicast
    return kind


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# Every range that IANA's special-purpose address registries mark as not globally reachable (or N/A), by table:
# https://www.iana.org/assignments/iana-ipv4-special-registry/ and
# https://www.iana.org/assignments/iana-ipv6-special-registry/ (as of 2026-11), with the multicast ranges and IPv6's
# deprecated site-local range (RFC 3879) beside them. The few globally reachable entries that lie inside a refused
# range (anycast service addresses such as 192.0.0.9/32 or 2001:1::1/128, AMT, AS112, ORCHIDv2) are refused with it:
# no payload is served there. The IPv6 ranges that carry an IPv4 address (::ffff:0:0/96, 2002::/16, 2001::/32,
# 64:ff9b::/96, ::/96) are judged by the IPv4 address they carry, before this table is read.
_NOT_GLOBAL: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/32", "unspecified"),  # RFC 8190: "this host on this network"
        ("0.0.0.0/8", "this-network"),  # RFC 791
        ("10.0.0.0/8", "private"),  # RFC 1918
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),  # RFC 6598
        ("127.0.0.0/8", "loopback"),  # RFC 1122
        ("169.254.0.0/16", "link-local"),  # RFC 3927
        ("172.16.0.0/12", "private"),  # RFC 1918
        ("192.0.0.0/24", "IETF protocol assignment"),  # RFC 6890: the service continuity prefix, dummy, NAT64 discovery
        ("192.0.2.0/24", "documentation"),  # RFC 5737
        ("192.88.99.0/24", "6to4 relay anycast"),  # RFC 7526, deprecated
        ("192.168.0.0/16", "private"),  # RFC 1918
        ("198.18.0.0/15", "benchmarking"),  # RFC 2544
        ("198.51.100.0/24", "documentation"),  # RFC 5737
        ("203.0.113.0/24", "documentation"),  # RFC 5737
        ("224.0.0.0/4", "multicast"),  # RFC 5771 (the multicast registry)
        ("255.255.255.255/32", "broadcast"),  # RFC 919
        ("240.0.0.0/4", "reserved"),  # RFC 1112
        ("::/128", "unspecified"),  # RFC 4291
        ("::1/128", "loopback"),  # RFC 4291
        ("64:ff9b:1::/48", "local-use NAT64"),  # RFC 8215
        ("100::/64", "discard-only"),  # RFC 6666
        ("100:0:0:1::/64", "dummy"),  # RFC 9780
        ("2001::/23", "IETF protocol assignment"),  # RFC 2928: benchmarking 2001:2::/48, ORCHID and the rest
        ("2001:db8::/32", "documentation"),  # RFC 3849
        ("3fff::/20", "documentation"),  # RFC 9637
        ("5f00::/16", "segment routing (SRv6) SID"),  # RFC 9602
        ("fc00::/7", "private"),  # RFC 4193: unique-local
        ("fe80::/10", "link-local"),  # RFC 4291
        ("fec0::/10", "site-local"),  # RFC 3879, deprecated
        ("ff00::/8", "multicast"),  # RFC 4291
    )
)


def parse_allowed_hosts(text: str) -> tuple[AllowedHost, ...]:
    """Comma-separated `host[:port]` entries, an IPv6 address in brackets before a port; ValueError names a bad one."""
    return tuple(_allowed_host(entry.strip()) for entry in text.split(",") if entry.strip())


def _allowed_host(entry: str) -> AllowedHost:
    """A host as a URL names it (the one URL rule), with an optional port; an IPv6 address bare or in brackets."""
    if not entry.startswith("[") and entry.count(":") > 1:
        try:
            return AllowedHost(str(ipaddress.IPv6Address(entry)))
        except ValueError:
            raise ValueError(f"{entry!r} is not host[:port] (an IPv6 address with a port goes in brackets)") from None
    if any(character in entry for character in "@/?#"):
        raise ValueError(f"{entry!r} is not host[:port]")
    try:
        url = parse_http_url(f"http://{entry}/")
    except ValueError as error:
        raise ValueError(f"{entry!r} is not host[:port]: {error}") from None
    return AllowedHost(url.host.rstrip("."), url.port)


def _same_host(first: str, second: str) -> bool:
    first, second = first.lower().rstrip(".").strip("[]"), second.lower().rstrip(".").strip("[]")
    try:
        return ipaddress.ip_address(first) == ipaddress.ip_address(second)
    except ValueError:
        return first == second
