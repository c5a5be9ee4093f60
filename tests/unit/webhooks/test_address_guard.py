"""The SSRF guard, with injected resolvers: these tests resolve no names and send no traffic."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.webhooks.address_guard import (
    IPAddress,
    UnsafeWebhookUrl,
    blocked_category,
    check_url,
    parse_ipv4_literal,
    system_resolver,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any real DNS lookup or connection in these tests is a bug."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access in a unit test: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


class StubResolver:
    """Answers from a script: one answer per call (the last one repeats), recording each call."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = [[ip_address(a) for a in answer] for answer in answers]
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[IPAddress]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def no_dns(host: str) -> list[IPAddress]:
    raise AssertionError(f"the resolver must not be asked about the literal {host!r}")


def refused(url: str, resolver: object = no_dns, **kwargs: bool) -> UnsafeWebhookUrl:
    with pytest.raises(UnsafeWebhookUrl) as info:
        check_url(url, resolver=resolver, **kwargs)  # type: ignore[arg-type]
    return info.value


# --- accepted -----------------------------------------------------------------------------------


def test_a_public_https_url_is_accepted_with_all_its_addresses() -> None:
    resolver = StubResolver([PUBLIC_V4, PUBLIC_V6, PUBLIC_V4])
    addresses = check_url("https://hooks.merchant.example/rizzpay?x=1", resolver=resolver)
    assert addresses == [IPv4Address(PUBLIC_V4), IPv6Address(PUBLIC_V6)]
    assert resolver.calls == ["hooks.merchant.example"]


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://Hooks.Merchant.Example:8443/path#frag",
        "https://xn--bcher-kva.example/",
        "https://a_b.example./",
    ],
)
def test_host_names_of_every_ordinary_shape_are_accepted(url: str) -> None:
    assert check_url(url, resolver=StubResolver(["8.8.8.8"])) == [IPv4Address("8.8.8.8")]


def test_public_ip_literals_are_accepted_without_dns() -> None:
    assert check_url(f"https://{PUBLIC_V4}/", resolver=no_dns) == [IPv4Address(PUBLIC_V4)]
    assert check_url(f"https://[{PUBLIC_V6}]:443/", resolver=no_dns) == [IPv6Address(PUBLIC_V6)]


# --- every non-public range ---------------------------------------------------------------------

BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link_local"),  # cloud metadata
    ("169.254.0.1", "link_local"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.170", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link_local"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("fec0::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped forms
    ("::ffff:169.254.169.254", "link_local"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:100.64.0.1", "shared"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("64:ff9b::a9fe:a9fe", "link_local"),  # NAT64 of 169.254.169.254
    ("64:ff9b::7f00:1", "loopback"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ("100::1", "reserved"),  # discard-only
    ("2001::1", "reserved"),  # Teredo
    ("2002:7f00:1::1", "reserved"),  # 6to4 of 127.0.0.1
    ("2001:db8::1", "documentation"),
    ("4000::1", "reserved"),  # outside global unicast
]


@pytest.mark.parametrize(("address", "category"), BLOCKED)
def test_a_host_resolving_to_a_non_public_address_is_refused(address: str, category: str) -> None:
    error = refused("https://hooks.merchant.example/", StubResolver([address]))
    assert error.code == "resolves_to_private_address"
    assert error.category == category
    assert error.address == ip_address(address)


@pytest.mark.parametrize(("address", "category"), BLOCKED)
def test_a_literal_non_public_address_is_refused(address: str, category: str) -> None:
    host = f"[{address}]" if ":" in address else address
    error = refused(f"https://{host}:8443/hook")
    assert error.code == "resolves_to_private_address"
    assert error.category == category


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    resolver = StubResolver([PUBLIC_V4, PUBLIC_V6, "10.1.2.3"])
    assert refused("https://hooks.merchant.example/", resolver).address == IPv4Address("10.1.2.3")
    resolver = StubResolver([PUBLIC_V4, "fd00::1"])
    assert refused("https://hooks.merchant.example/", resolver).category == "private"


def test_a_second_check_catches_dns_rebinding() -> None:
    resolver = StubResolver([PUBLIC_V4], ["169.254.169.254"])
    url = "https://rebind.merchant.example/hook"
    assert check_url(url, resolver=resolver) == [IPv4Address(PUBLIC_V4)]  # at registration
    error = refused(url, resolver)  # at send time
    assert error.code == "resolves_to_private_address"
    assert error.category == "link_local"
    assert resolver.calls == ["rebind.merchant.example"] * 2


# --- numeric host spellings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "means"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("010.0.0.1", "8.0.0.1"),  # octal: not 10.0.0.1, which is why these are refused
        ("134744072", "8.8.8.8"),  # even when public
        ("8.8.8.8.", "8.8.8.8"),
        ("1.2.3.04", "1.2.3.4"),
        ("1.2.", "1.0.0.2"),
    ],
)
def test_non_canonical_ipv4_literals_are_refused(host: str, means: str) -> None:
    assert parse_ipv4_literal(host.lower()) == IPv4Address(means)
    error = refused(f"https://{host}/")
    assert error.code == "non_canonical_ip_literal"
    assert error.address == IPv4Address(means)
    # With http they fail on the scheme first, and with the development flag still refused.
    assert refused(f"http://{host}/").code == "scheme_not_allowed"
    assert refused(f"http://{host}/", allow_loopback=True).code == "non_canonical_ip_literal"


@pytest.mark.parametrize(
    "host",
    [
        "256.1.1.1",
        "1.2.3.4.5",
        "08.0.0.1",
        "0x1g.1",
        "4294967296",
        "1.16777216",
        "foo.0x7f",
        "1..2",
    ],
)
def test_hosts_that_end_in_a_number_but_are_no_ipv4_address_are_refused(host: str) -> None:
    assert refused(f"https://{host}/").code == "invalid_host"


def test_names_that_merely_contain_digits_are_names() -> None:
    assert parse_ipv4_literal("1.2.3.example") is None
    assert parse_ipv4_literal("0x7f.example") is None
    resolver = StubResolver([PUBLIC_V4])
    assert check_url("https://127.0.0.1.nip.example/", resolver=resolver) == [
        IPv4Address(PUBLIC_V4)
    ]


# --- scheme, credentials, malformed URLs --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.merchant.example/",
        "ftp://hooks.merchant.example/",
        "file:///etc/passwd",
        "gopher://hooks.merchant.example/",
        "javascript:alert(1)",
        "//hooks.merchant.example/",
        "hooks.merchant.example/hook",
    ],
)
def test_only_https_is_allowed(url: str) -> None:
    assert refused(url, StubResolver([PUBLIC_V4])).code == "scheme_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@hooks.merchant.example/",
        "https://user@hooks.merchant.example/",
        "https://@hooks.merchant.example/",
        "https://hooks.merchant.example@127.0.0.1/",
        "https://:pw@hooks.merchant.example/",
    ],
)
def test_credentials_in_the_url_are_refused(url: str) -> None:
    assert refused(url, StubResolver([PUBLIC_V4])).code == "credentials_in_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.merchant.example/a b",
        "https://hooks.merchant.example\\@127.0.0.1/",
        "https://hooks.merchant.example/\n",
        "https://hooks.merchant.\texample/",
        "https://hooks.merchant.example:0/",
        "https://hooks.merchant.example:99999/",
        "https://hooks.merchant.example:port/",
        "https://[::1/",
        "https://hooks.merchant.example/" + "a" * 2048,
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    assert refused(url, StubResolver([PUBLIC_V4])).code == "malformed_url"


@pytest.mark.parametrize(
    "url",
    [
        "https:///path",
        "https://exämple.com/",
        "https://127。0。0。1/",  # ideographic full stops
        "https://１２７.0.0.1/",  # full-width digits
        "https://hooks..merchant.example/",
        "https://-hooks.merchant.example/",
        "https://" + "a" * 64 + ".example/",
        "https://hooks%2emerchant.example/",
        "https://[fe80::1%25eth0]/",
    ],
)
def test_invalid_hosts_are_refused(url: str) -> None:
    assert refused(url, StubResolver([PUBLIC_V4])).code == "invalid_host"


def test_a_bracketed_host_that_is_no_ipv6_address_is_refused() -> None:
    # urlsplit itself rejects it on newer Pythons (malformed_url); otherwise the guard does.
    code = refused("https://[not:an:address]/", StubResolver([PUBLIC_V4])).code
    assert code in {"malformed_url", "invalid_host"}


# --- resolution failures ------------------------------------------------------------------------


def test_an_unresolvable_host_is_refused() -> None:
    def gaierror(host: str) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    assert refused("https://nx.merchant.example/", gaierror).code == "unresolvable_host"
    assert refused("https://nx.merchant.example/", StubResolver([])).code == "unresolvable_host"
    assert refused("https://nx.merchant.example/", lambda h: ["junk"]).code == "unresolvable_host"


def test_a_resolver_answering_with_strings_is_understood() -> None:
    assert refused("https://h.merchant.example/", lambda h: ["10.0.0.1"]).category == "private"
    answers_strings = lambda h: [PUBLIC_V4]  # noqa: E731
    addresses = check_url("https://h.merchant.example/", resolver=answers_strings)  # type: ignore[arg-type]
    assert addresses == [IPv4Address(PUBLIC_V4)]


# --- the development flag -----------------------------------------------------------------------


def test_loopback_is_allowed_only_with_the_development_flag() -> None:
    resolver = StubResolver(["127.0.0.1", "::1"])
    assert refused("https://localhost:8000/hook", resolver).category == "loopback"
    assert refused("http://localhost:8000/hook", resolver).code == "scheme_not_allowed"
    expected = [IPv4Address("127.0.0.1"), IPv6Address("::1")]
    assert (
        check_url("http://localhost:8000/hook", resolver=resolver, allow_loopback=True) == expected
    )
    assert check_url("https://localhost:8000/", resolver=resolver, allow_loopback=True) == expected
    assert check_url("http://127.0.0.1:8000/", resolver=no_dns, allow_loopback=True) == [
        IPv4Address("127.0.0.1")
    ]
    assert check_url("http://[::1]:8000/", resolver=no_dns, allow_loopback=True) == [
        IPv6Address("::1")
    ]


def test_the_development_flag_allows_nothing_but_loopback() -> None:
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "192.168.0.10", "fd00::1"):
        error = refused(
            "https://dev.merchant.example/", StubResolver([address]), allow_loopback=True
        )
        assert error.code == "resolves_to_private_address"
    # http only for loopback targets, even with the flag.
    error = refused(
        "http://hooks.merchant.example/", StubResolver([PUBLIC_V4]), allow_loopback=True
    )
    assert error.code == "scheme_not_allowed"
    error = refused(
        "http://mixed.merchant.example/",
        StubResolver(["127.0.0.1", PUBLIC_V4]),
        allow_loopback=True,
    )
    assert error.code == "scheme_not_allowed"
    # https to a public address is unaffected by the flag.
    assert check_url(
        "https://hooks.merchant.example/", resolver=StubResolver([PUBLIC_V4]), allow_loopback=True
    ) == [IPv4Address(PUBLIC_V4)]


# --- the system resolver, with getaddrinfo stubbed ----------------------------------------------


def test_system_resolver_collects_v4_and_v6_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[object, ...]] = []

    def fake_getaddrinfo(*args: object, **kwargs: object) -> list[tuple[object, ...]]:
        asked.append(args)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (PUBLIC_V6, 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, 0)),  # duplicate
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 0, 0, 2)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    addresses = system_resolver("hooks.merchant.example")
    assert asked == [("hooks.merchant.example", None)]
    assert addresses[:2] == [IPv4Address(PUBLIC_V4), IPv6Address(PUBLIC_V6)]
    assert len(addresses) == 3
    error = refused("https://hooks.merchant.example/", system_resolver)
    assert error.category == "link_local"


# --- properties ---------------------------------------------------------------------------------


@given(st.ip_addresses(v=4))
def test_ipv4_and_its_mapped_and_nat64_forms_are_judged_alike(address: IPv4Address) -> None:
    category = blocked_category(address)
    assert blocked_category(IPv6Address(f"::ffff:{address}")) == category
    assert blocked_category(IPv6Address(int(IPv6Address("64:ff9b::")) | int(address))) == category
    # Everything Python's own table says is not global is refused too.
    if not address.is_global or address.is_multicast or address.is_reserved:
        assert category is not None


@given(st.ip_addresses(v=6))
def test_every_non_global_ipv6_address_is_refused(address: IPv6Address) -> None:
    if address.ipv4_mapped is not None or int(address) >> 32 == int(IPv6Address("64:ff9b::")) >> 32:
        return  # judged by the IPv4 address inside (previous test)
    if not address.is_global or address.is_multicast or address.is_link_local:
        assert blocked_category(address) is not None
    if address.is_site_local or address.is_reserved or address.is_loopback:
        assert blocked_category(address) is not None
