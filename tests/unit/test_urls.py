"""The one rule for an http(s) URL: a table of URLs taken and refused, and properties over any text.

The property that matters: a URL the rule takes is read the same by every parser on its way (httpx's, which makes
the request, and urllib's), so no host is checked under one reading and connected under another.
"""

import ipaddress
import string
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain.urls import MAX_URL_LENGTH, HttpUrl, parse_http_url

TAKEN = [
    ("http://files.example/p", HttpUrl("http", "files.example", None)),
    ("HTTPS://Files.Example:8443/p?x=1#f", HttpUrl("https", "files.example", 8443)),
    ("https://bucket.s3.example/k?X-Amz-Signature=ab%2Fcd", HttpUrl("https", "bucket.s3.example", None)),
    ("http://93.184.215.14/", HttpUrl("http", "93.184.215.14", None)),
    ("http://0.0.0.0", HttpUrl("http", "0.0.0.0", None)),  # canonical: refused later, by the address guard
    ("http://[2606:2800:220:1::1]:81/", HttpUrl("http", "2606:2800:220:1::1", 81)),
    ("http://[::FFFF:127.0.0.1]/", HttpUrl("http", "::ffff:7f00:1", None)),
    ("http://user:secret@files.example/", HttpUrl("http", "files.example", None)),
    ("http://under_score.example/", HttpUrl("http", "under_score.example", None)),
    ("http://files.example./", HttpUrl("http", "files.example.", None)),
]


@pytest.mark.parametrize(("url", "parsed"), TAKEN)
def test_urls_taken(url: str, parsed: HttpUrl) -> None:
    assert parse_http_url(url) == parsed


REFUSED = [
    ("file:///etc/passwd", "must be an http:// or https:// URL"),
    ("ftp://files.example/", "must be an http:// or https:// URL"),
    ("files.example/p", "must be an http:// or https:// URL"),
    ("http:/files.example", "must be an http:// or https:// URL"),
    ("http://", "has no host"),
    ("http://:80/", "has no host"),
    ("http://0177.0.0.1/", "host '0177.0.0.1' is not a dotted-quad IPv4 address"),
    ("http://0x7f.0.0.1/", "host '0x7f.0.0.1' is not a dotted-quad IPv4 address"),
    ("http://127.1/", "host '127.1' is not a dotted-quad IPv4 address"),
    ("http://2130706433/", "host '2130706433' is not a dotted-quad IPv4 address"),
    ("http://1.2.3.4.5/", "host '1.2.3.4.5' is not a dotted-quad IPv4 address"),
    ("http://256.0.0.1/", "host '256.0.0.1' is not a dotted-quad IPv4 address"),
    ("http://01.2.3.4/", "host '01.2.3.4' is not a dotted-quad IPv4 address"),
    ("http://1.2.3.4./", "host '1.2.3.4.' is not a dotted-quad IPv4 address"),
    ("http://files.0x1/", "host 'files.0x1' is not a dotted-quad IPv4 address"),
    ("http://a..example/", "host 'a..example' is not a DNS name"),
    ("http://-a.example/", "host '-a.example' is not a DNS name"),
    ("http://[::1/", "has a malformed IPv6 host"),
    ("http://[::1]x/", "has a malformed IPv6 host"),
    ("http://[fe80::1%25eth0]/", "host [fe80::1%25eth0] is not an IPv6 address (zones are refused)"),
    ("http://[v1.x]/", "host [v1.x] is not an IPv6 address"),
    ("http://files.example:/", "port '' is not a number from 1 to 65535"),
    ("http://files.example:0/", "port '0' is not a number from 1 to 65535"),
    ("http://files.example:65536/", "port '65536' is not a number from 1 to 65535"),
    ("http://files.example:http/", "port 'http' is not a number from 1 to 65535"),
    ("http://files.example\\@evil.example/", "must not hold a backslash"),
    ("http://a@b@files.example/", "has a malformed user part"),
    ("http://files.example/a b", "must be printable ASCII with no space"),
    ("http://files.example/\x00", "must be printable ASCII with no space"),
    ("http://fïles.example/", "must be printable ASCII with no space"),
    ("http://files.example/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH} characters"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_urls_refused_say_why(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_http_url(url)
    assert str(refused.value).startswith(reason), str(refused.value)


def same_host(first: str, second: str) -> bool:
    first, second = first.strip("[]").lower(), second.strip("[]").lower()
    try:
        return ipaddress.ip_address(first) == ipaddress.ip_address(second)
    except ValueError:
        return first == second


URL_ALPHABET = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%\\ \t0x"
url_like = st.builds(
    lambda scheme, middle: scheme + middle,
    st.sampled_from(["http://", "https://", "HTTP://", "http:/", "ftp://", ""]),
    st.text(alphabet=URL_ALPHABET, max_size=60),
)


@given(st.one_of(url_like, st.text(max_size=80)))
@example("http://0177.0.0.1/")
@example("http://127.1:80/")
@example("http://a.example\\@b.example/")
@example("http://[::1]:80@evil/")
@example("http://a.example#@evil.example/")
@example("http://a.example?@evil.example/")
def test_every_parser_reads_a_taken_url_alike(url: str) -> None:
    try:
        parsed = parse_http_url(url)
    except ValueError:
        return
    by_httpx = httpx.URL(url)  # raises httpx.InvalidURL for a URL it cannot use: the test fails then
    assert (by_httpx.scheme, by_httpx.port) == (parsed.scheme, parsed.port)
    assert same_host(by_httpx.host, parsed.host)
    by_urllib = urlsplit(url)
    assert (by_urllib.scheme.lower(), by_urllib.port) == (parsed.scheme, parsed.port)
    assert same_host(by_urllib.hostname or "", parsed.host)


@given(
    st.sampled_from(["http", "https"]),
    st.lists(st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True), min_size=1, max_size=4),
    st.sampled_from(["com", "example", "io"]),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.text(alphabet=string.ascii_letters + string.digits + "/-._~%=&?", max_size=30),
)
def test_every_well_formed_url_is_taken(scheme: str, labels: list[str], tld: str, port: int | None, path: str) -> None:
    host = ".".join([*labels, tld])
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}/{path}"
    assert parse_http_url(url) == HttpUrl(scheme, host, port)


@given(st.integers(0, 2**32 - 1))
def test_a_canonical_ipv4_address_is_taken_and_its_other_spellings_refused(number: int) -> None:
    address = ipaddress.IPv4Address(number)
    assert parse_http_url(f"http://{address}/").host == str(address)
    for spelling in (str(number), hex(number), ".".join(f"0{octet:o}" for octet in address.packed)):
        with pytest.raises(ValueError, match="is not a dotted-quad IPv4 address"):
            parse_http_url(f"http://{spelling}/")
