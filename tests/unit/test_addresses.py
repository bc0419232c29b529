"""Where a job's URLs may connect: the address policy as tables, no network."""

import ipaddress

import pytest

from application.settings import ConfigurationError, load_settings
from domain.addresses import AddressPolicy, AllowedHost, non_public_kind, parse_allowed_hosts


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("240.0.0.1", "reserved"),
        # Ranges of IANA's special-purpose registries that Python's flags do not all cover
        ("192.0.0.8", "IETF protocol assignment"),  # the IPv4 dummy address
        ("192.0.0.9", "IETF protocol assignment"),  # an anycast address inside 192.0.0.0/24: refused with it
        ("192.0.0.171", "IETF protocol assignment"),  # NAT64/DNS64 discovery
        ("192.88.99.1", "6to4 relay anycast"),
        ("198.18.0.1", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("255.255.255.255", "broadcast"),
        ("0.1.2.3", "this-network"),
        ("fec0::1", "site-local"),
        ("3fff::1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("2001:2::1", "IETF protocol assignment"),
        ("5f00::1", "segment routing (SRv6) SID"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("100::1", "discard-only"),
        ("ff02::1", "multicast"),
        ("4000::1", "reserved"),
        ("93.184.215.14", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        # IPv6 addresses that carry an IPv4 one are judged by it: 6to4, Teredo (its client), NAT64, IPv4-compatible
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::", "link-local"),
        ("2002:0a00:0001::1", "private"),
        ("2002:5db8:d70e::", None),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "link-local"),
        ("2001:0:4136:e378:8000:63bf:a247:28f1", None),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("64:ff9b::5db8:d70e", None),
        ("::127.0.0.1", "loopback"),
        ("::169.254.169.254", "link-local"),
        ("::93.184.215.14", None),
    ],
)
def test_what_makes_an_address_not_public(address: str, kind: str | None) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) == kind


def test_a_public_address_is_allowed_and_a_non_public_one_refused_with_the_variable_to_allow_it() -> None:
    policy = AddressPolicy()
    assert policy.refusal("files.example", 443, "93.184.215.14") is None
    assert policy.refusal("127.0.0.1", 8000, "127.0.0.1") == (
        "127.0.0.1 is a loopback address, refused (the operator can allow it with CASOLA_PAYLOAD_ALLOWED_HOSTS)"
    )
    assert policy.refusal("files.example", 443, "10.1.2.3") == (
        "host files.example resolves to a private address, refused "
        "(the operator can allow it with CASOLA_PAYLOAD_ALLOWED_HOSTS)"
    )


@pytest.mark.parametrize(
    ("allowed", "host", "port", "address", "refused"),
    [
        ("payloads.internal", "payloads.internal", 80, "10.0.0.5", False),
        ("payloads.internal", "PAYLOADS.internal.", 8080, "10.0.0.5", False),
        ("payloads.internal:8080", "payloads.internal", 8080, "10.0.0.5", False),
        ("payloads.internal:8080", "payloads.internal", 8000, "10.0.0.5", True),  # vLLM's port stays out
        ("payloads.internal", "other.internal", 80, "10.0.0.5", True),
        ("10.0.0.5", "any.name", 80, "10.0.0.5", False),  # an allowed address, whatever name led there
        ("[::1]:9000", "::1", 9000, "::1", False),
        ("[::1]:9000", "::1", 9001, "::1", True),
        ("::1", "::1", 9001, "::1", False),
        ("127.0.0.1:9000, files.internal", "files.internal", 1, "192.168.0.1", False),
    ],
)
def test_the_operator_allows_hosts_by_name_or_address_and_port(
    allowed: str, host: str, port: int, address: str, refused: bool
) -> None:
    policy = AddressPolicy(parse_allowed_hosts(allowed))
    assert (policy.refusal(host, port, address) is not None) is refused


def test_allowed_hosts_are_parsed_from_comma_separated_host_and_port() -> None:
    assert parse_allowed_hosts(" a.example , 127.0.0.1:9000,[::1]:80,, fd00::2 ") == (
        AllowedHost("a.example"),
        AllowedHost("127.0.0.1", 9000),
        AllowedHost("::1", 80),
        AllowedHost("fd00::2"),
    )
    assert parse_allowed_hosts("") == ()


@pytest.mark.parametrize(
    "entry",
    [
        "a.example:http",
        "a.example:0",
        "a.example:70000",
        "http://a.example",
        "[::1]x",
        "host:80:81",
        "a.example#x",
        "user@a.example",
        "0177.0.0.1",
        "127.1",
        "a..example",
        "[::1%eth0]",
    ],
)
def test_a_bad_allowed_host_stops_the_worker_at_start_naming_the_variable(entry: str) -> None:
    environment = {"CASOLA_WS_URL": "ws://127.0.0.1:1", "CASOLA_CONFIG_ID": "c", "VLLM_MODEL": "m"}
    with pytest.raises(ConfigurationError, match=r"^CASOLA_PAYLOAD_ALLOWED_HOSTS='.*' is not host\[:port\]|port must"):
        load_settings({**environment, "CASOLA_PAYLOAD_ALLOWED_HOSTS": entry})
