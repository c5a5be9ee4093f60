"""Refuse webhook URLs that would make RizzPay send requests into its own network (SSRF).

:func:`check_url` accepts an ``https`` URL without credentials whose host resolves only to public
addresses, and returns those addresses.  It refuses, with a stable :class:`UnsafeWebhookUrl`
code, any URL for which even one resolved address (IPv4 or IPv6) is loopback, private
(10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 -- the cloud metadata service
169.254.169.254 -- and fe80::/10), shared/CGNAT (100.64/10), multicast, unspecified, reserved,
documentation or benchmarking space, or an IPv4-mapped (``::ffff:0:0/96``) or NAT64
(``64:ff9b::/96``) form of any of those.  IPv6 outside global unicast (2000::/3) is refused, as
are the deprecated or tunnelling blocks inside it (2001::/23 with Teredo, 2002::/16 6to4).

Hosts that are IPv4 numbers in the old ``inet_aton`` spellings -- decimal ``2130706433``, hex
``0x7f000001``, octal ``0177.0.0.1``, short ``127.1`` or ``0x7f.1`` -- are refused outright
(``non_canonical_ip_literal``) whatever they decode to, because different parsers disagree on
them.  Only dotted-quad IPv4 and bracketed IPv6 literals are taken as addresses; anything else
must be an ASCII host name (IDNs in their ``xn--`` form).

Development: ``allow_loopback=True`` (a development setting, never production) also accepts
loopback addresses (127/8, ::1), and then ``http`` as well, but only when every address is
loopback.  0.0.0.0 stays refused.

DNS rebinding: a host may resolve to a public address when the merchant registers the URL and to
a private one when RizzPay sends.  So the check at registration is not enough.  The delivery
agent calls :func:`check_url` again right before each attempt and connects to one of the
addresses that check returned -- never resolving the name a second time -- sending the original
host name in the ``Host`` header and as the TLS server name (with httpx: request the URL with the
checked IP as host, ``headers={"Host": host}`` and ``extensions={"sni_hostname": host}``), with
redirects not followed and proxy settings from the environment ignored (``trust_env=False``).

The resolver is injected (``host -> addresses``) so tests need no DNS; :func:`system_resolver`
uses ``socket.getaddrinfo``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final, Literal
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "AddressCategory",
    "IPAddress",
    "Resolver",
    "UnsafeUrlCode",
    "UnsafeWebhookUrl",
    "blocked_category",
    "check_url",
    "parse_ipv4_literal",
    "system_resolver",
]

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str], Sequence[IPAddress]]

UnsafeUrlCode = Literal[
    "malformed_url",
    "scheme_not_allowed",
    "credentials_in_url",
    "invalid_host",
    "non_canonical_ip_literal",
    "unresolvable_host",
    "resolves_to_private_address",
]

AddressCategory = Literal[
    "unspecified",
    "loopback",
    "private",
    "link_local",
    "shared",
    "multicast",
    "reserved",
    "documentation",
    "benchmarking",
]

MAX_URL_CHARS: Final = 2048
_MAX_HOST_CHARS: Final = 253

_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"  # 1 to 63 characters
_HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # decimal, no leading zeros
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")

_IPV4_TABLE: Final[tuple[tuple[str, AddressCategory], ...]] = (
    ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 reaches the local host
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared"),  # carrier-grade NAT
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link_local"),  # includes the metadata service 169.254.169.254
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),  # 6to4 relay anycast (deprecated)
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
)
_IPV4_BLOCKED: Final = tuple((IPv4Network(net), category) for net, category in _IPV4_TABLE)

_IPV6_TABLE: Final[tuple[tuple[str, AddressCategory], ...]] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link_local"),
    ("fc00::/7", "private"),  # unique local addresses
    ("fec0::/10", "private"),  # site-local (deprecated)
    ("ff00::/8", "multicast"),
    ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo 2001::/32 included
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "reserved"),  # 6to4 (deprecated; embeds an IPv4 address)
    ("3fff::/20", "documentation"),
)
_IPV6_BLOCKED: Final = tuple((IPv6Network(net), category) for net, category in _IPV6_TABLE)
_IPV6_GLOBAL_UNICAST: Final = IPv6Network("2000::/3")
_NAT64: Final = IPv6Network("64:ff9b::/96")


class UnsafeWebhookUrl(ValueError):
    """A webhook URL RizzPay will not send to.  ``code`` is stable; branch on it.

    For ``resolves_to_private_address``, ``address`` is the offending address and ``category``
    its kind (``loopback``, ``private``, ``link_local``, ...).  For ``non_canonical_ip_literal``,
    ``address`` is what the host decodes to.
    """

    def __init__(
        self,
        code: UnsafeUrlCode,
        message: str,
        *,
        address: IPAddress | None = None,
        category: AddressCategory | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code: UnsafeUrlCode = code
        self.message = message
        self.address = address
        self.category = category


def blocked_category(address: IPAddress) -> AddressCategory | None:
    """Why RizzPay must not connect to ``address``, or ``None`` if it is a public address."""
    if isinstance(address, IPv6Address):
        plain = IPv6Address(int(address))  # drop any %scope
        mapped = plain.ipv4_mapped
        if mapped is not None:
            return blocked_category(mapped)
        if plain in _NAT64:
            return blocked_category(IPv4Address(int(plain) & 0xFFFF_FFFF))
        for net6, category in _IPV6_BLOCKED:
            if plain in net6:
                return category
        return None if plain in _IPV6_GLOBAL_UNICAST else "reserved"
    for net4, category in _IPV4_BLOCKED:
        if address in net4:
            return category
    return None


def _ipv4_number(label: str) -> int | None:
    """One ``inet_aton`` part: ``0x`` hex, leading-zero octal, or decimal; None if invalid."""
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8) if set(label) <= set("01234567") else None
    return int(label)


def parse_ipv4_literal(host: str) -> IPv4Address | None:
    """Decode a host the way ``inet_aton`` (and WHATWG URL parsing) reads numeric hosts.

    Returns ``None`` if ``host`` does not end in a numeric label (so it is a name); raises
    ``UnsafeWebhookUrl("invalid_host")`` if it does but is no valid IPv4 number.
    """
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        raise UnsafeWebhookUrl(
            "invalid_host", f"{host!r} is neither a host name nor an IPv4 address"
        )
    numbers = [_ipv4_number(label) for label in labels]
    *head, last = numbers
    if last is None or any(n is None or n > 255 for n in head) or last >= 256 ** (5 - len(labels)):
        raise UnsafeWebhookUrl("invalid_host", f"{host!r} is not a valid IPv4 address")
    value = last
    for index, number in enumerate(head):
        assert number is not None
        value += number << (8 * (3 - index))
    return IPv4Address(value)


def system_resolver(host: str) -> list[IPAddress]:
    """Every IPv4 and IPv6 address ``host`` resolves to, via ``socket.getaddrinfo``.

    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    addresses: dict[IPAddress, None] = {}
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses[ip_address(str(sockaddr[0]))] = None
    return list(addresses)


def _as_address(host: str, item: object) -> IPAddress:
    """A resolver's answer as an address (a stub may answer with strings)."""
    if isinstance(item, IPv4Address | IPv6Address):
        return item
    try:
        return ip_address(str(item))
    except ValueError as exc:
        raise UnsafeWebhookUrl("unresolvable_host", f"{host!r} resolved to {item!r}") from exc


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_CHARS:
        raise UnsafeWebhookUrl(
            "malformed_url", f"a webhook URL is at most {MAX_URL_CHARS} characters"
        )
    if _BAD_URL_CHARS.search(url):
        raise UnsafeWebhookUrl("malformed_url", "whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl("malformed_url", str(exc)) from exc
    if port == 0:
        raise UnsafeWebhookUrl("malformed_url", "port 0")
    return parts


def _literal_address(parts: SplitResult, host: str) -> IPAddress | None:
    """The address a literal host names, ``None`` for a host name; refuses odd spellings."""
    if "[" in parts.netloc:  # a bracketed IPv6 literal
        if "%" in host:
            raise UnsafeWebhookUrl("invalid_host", "IPv6 zone identifiers are not allowed")
        try:
            return IPv6Address(host)
        except ValueError as exc:
            raise UnsafeWebhookUrl("invalid_host", f"{host!r} is not an IPv6 address") from exc
    if len(host) > _MAX_HOST_CHARS or not _HOST_NAME.fullmatch(host):
        raise UnsafeWebhookUrl(
            "invalid_host", "the host must be an ASCII name (xn-- for IDNs) or an IP address"
        )
    v4 = parse_ipv4_literal(host)
    if v4 is not None and not _DOTTED_QUAD.fullmatch(host):
        raise UnsafeWebhookUrl(
            "non_canonical_ip_literal",
            f"write IPv4 addresses as dotted quads ({host!r} means {v4})",
            address=v4,
        )
    return v4


def check_url(url: str, *, resolver: Resolver, allow_loopback: bool = False) -> list[IPAddress]:
    """Check a webhook URL; return the addresses to connect to, or raise ``UnsafeWebhookUrl``.

    ``resolver`` maps a host name to its addresses (``system_resolver`` in production; a stub in
    tests); it is not called for IP literals.  ``allow_loopback`` is the development setting
    that also accepts loopback targets and, for them only, ``http``.  Call again right before
    every delivery and connect only to an address it returned (DNS rebinding).

    Codes: ``malformed_url``, ``scheme_not_allowed``, ``credentials_in_url``, ``invalid_host``,
    ``non_canonical_ip_literal``, ``unresolvable_host``, ``resolves_to_private_address``.
    """
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_loopback):
        raise UnsafeWebhookUrl("scheme_not_allowed", "webhook URLs must use https")
    if "@" in parts.netloc:
        raise UnsafeWebhookUrl("credentials_in_url", "webhook URLs must not carry credentials")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrl("invalid_host", "the URL has no host")

    literal = _literal_address(parts, host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            resolved = resolver(host)
        except (OSError, UnicodeError) as exc:
            raise UnsafeWebhookUrl("unresolvable_host", f"{host!r} does not resolve") from exc
        addresses = list(dict.fromkeys(_as_address(host, item) for item in resolved))
        if not addresses:
            raise UnsafeWebhookUrl("unresolvable_host", f"{host!r} resolves to no address")

    for address in addresses:
        category = blocked_category(address)
        if category is None or (category == "loopback" and allow_loopback):
            continue
        raise UnsafeWebhookUrl(
            "resolves_to_private_address",
            f"{host!r} resolves to {address}, a {category.replace('_', '-')} address",
            address=address,
            category=category,
        )
    if scheme == "http" and any(blocked_category(a) != "loopback" for a in addresses):
        raise UnsafeWebhookUrl("scheme_not_allowed", "http is allowed only for loopback targets")
    return addresses
