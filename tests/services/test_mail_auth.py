"""SPF, DKIM and DMARC against a real DNS server on 127.0.0.1 (tests/dnsserver.py)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import authres
import authres.dmarc
import dkim
import dkim.util
import dns.resolver
import pytest

import caducee.services.dns as dns_service
from caducee.config import Settings
from caducee.errors import PolicyRejected
from caducee.services import cpu_pool
from caducee.services.dkim_keys import ensure_dkim_key
from caducee.services.dns import make_resolver
from caducee.services.mail_auth import (
    AuthVerdict,
    DkimResult,
    DmarcResult,
    SpfResult,
    check_spf,
    dkim_sign,
    evaluate_inbound,
    organizational_domain,
    spoof_error,
    spoof_reason,
    stamped,
    strip_own_results,
)
from caducee.services.mail_auth.spf import _SpfCheck
from tests.dnsserver import LocalDNS, local_dns  # noqa: F401 - the fixture

OUR_DOMAIN = "cabinet-exemple.fr"
OUR_MX_IP = "192.0.2.25"
OUTSIDE_IP = "203.0.113.7"


@pytest.fixture
def settings(tmp_path: Path, local_dns: LocalDNS) -> Settings:  # noqa: F811
    return Settings(
        data_dir=tmp_path / "data", hostname="mx.caducee.test", dns_resolver=local_dns.resolver_spec
    )


def message(
    from_: str = "Alice <alice@example.org>",
    body: str = "Bonjour,\r\nVoici le compte rendu.\r\n",
    extra: str = "",
) -> bytes:
    return (
        f"From: {from_}\r\n"
        "To: Dr Martin <dr.martin@cabinet-exemple.fr>\r\n"
        "Subject: Compte rendu\r\n"
        "Date: Mon, 02 Feb 2026 10:00:00 +0100\r\n"
        "Message-ID: <cr-1@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        f"{extra}"
        "\r\n"
        f"{body}"
    ).encode()


def publish_key(local_dns: LocalDNS, settings: Settings, domain: str) -> None:  # noqa: F811
    key = ensure_dkim_key(settings, domain)
    local_dns.add(key.dns_name, "TXT", key.dns_txt())


async def spf(
    settings: Settings, ip: str, mail_from: str, helo: str = "mail.example.org"
) -> SpfResult:
    return await check_spf(make_resolver(settings), ip, helo, mail_from)


# ----- SPF (RFC 7208) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "ip", "expected"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.10", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "198.51.100.1", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "198.51.100.1", "softfail"),
        ("v=spf1 ip4:192.0.2.0/24 ?all", "198.51.100.1", "neutral"),
        ("v=spf1 ip4:192.0.2.0/24", "198.51.100.1", "neutral"),  # §4.7: no match, no all
        ("v=spf1 -ip4:192.0.2.10 +all", "192.0.2.10", "fail"),  # first match wins
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8::25", "pass"),
        ("v=spf1 ip6:2001:db8::/32 -all", "192.0.2.10", "fail"),
        ("v=spf1 ip4:192.0.2.10 -all", "::ffff:192.0.2.10", "pass"),  # IPv4-mapped client
        ("V=SPF1 IP4:192.0.2.10 -ALL", "192.0.2.10", "pass"),  # case-insensitive
        ("v=spf1 a -all", "192.0.2.20", "pass"),
        ("v=spf1 a/24 -all", "192.0.2.99", "pass"),
        ("v=spf1 a -all", "192.0.2.99", "fail"),
        ("v=spf1 a:other.example.net -all", "198.51.100.8", "pass"),
        ("v=spf1 mx -all", "192.0.2.25", "pass"),
        ("v=spf1 mx:example.net -all", "192.0.2.25", "fail"),
        ("v=spf1 a//64 -all", "2001:db8:1::ffff", "pass"),
        ("v=spf1 include:_spf.example.net -all", "198.51.100.9", "pass"),
        ("v=spf1 redirect=_spf.example.net", "198.51.100.9", "pass"),
        ("v=spf1 redirect=_spf.example.net", "192.0.2.1", "fail"),
        ("v=spf1 exists:%{ir}.%{v}._allow.example.org -all", "192.0.2.77", "pass"),
        ("v=spf1 exists:%{ir}.%{v}._allow.example.org -all", "192.0.2.78", "fail"),
        ("v=spf1 ptr -all", "192.0.2.30", "pass"),
        ("v=spf1 unknown-modifier=foo ip4:192.0.2.10 -all", "192.0.2.10", "pass"),
        ("v=spf1 foo:bar -all", "192.0.2.10", "permerror"),  # unknown mechanism
        ("v=spf1 ip4:192.0.2.300 -all", "192.0.2.10", "permerror"),
        ("v=spf1 include:_nospf.example.net -all", "192.0.2.10", "permerror"),  # §5.2 none
        ("v=spf1 redirect=a.example.net redirect=b.example.net", "192.0.2.10", "permerror"),
        ("v=spf1 exists:%{x}.example.org -all", "192.0.2.10", "permerror"),  # bad macro
    ],
)
async def test_spf_results(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
    record: str,
    ip: str,
    expected: str,
) -> None:
    local_dns.add("example.org", "TXT", record)
    local_dns.add("example.org", "TXT", "google-site-verification=abc")  # not SPF: ignored
    local_dns.add("example.org", "A", "192.0.2.20")
    local_dns.add("example.org", "AAAA", "2001:db8:1::1")
    local_dns.add("example.org", "MX", "10 mx.example.org.")
    local_dns.add("mx.example.org", "A", "192.0.2.25")
    local_dns.add("example.net", "MX", "10 mx.example.net.")
    local_dns.add("mx.example.net", "A", "198.51.100.25")
    local_dns.add("other.example.net", "A", "198.51.100.8")
    local_dns.add("_spf.example.net", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    local_dns.add("_nospf.example.net", "TXT", "just text")
    local_dns.add("77.2.0.192.in-addr._allow.example.org", "A", "127.0.0.2")
    local_dns.add("30.2.0.192.in-addr.arpa", "PTR", "host30.example.org.")
    local_dns.add("host30.example.org", "A", "192.0.2.30")
    result = await spf(settings, ip, "bounce@example.org")
    assert result.result == expected, result
    assert result.domain == "example.org" and result.identity == "mailfrom"


async def test_spf_none_without_record_or_domain(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("example.org", "TXT", "v=spf10 not-spf")
    assert (await spf(settings, "192.0.2.1", "a@example.org")).result == "none"
    assert (await spf(settings, "192.0.2.1", "a@nowhere.example.org")).result == "none"
    assert (await spf(settings, "192.0.2.1", "a@localhost")).result == "none"  # not multi-label


async def test_spf_two_records_is_permerror(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("example.org", "TXT", "v=spf1 -all")
    local_dns.add("example.org", "TXT", "v=spf1 +all")
    assert (await spf(settings, "192.0.2.1", "a@example.org")).result == "permerror"


async def test_spf_include_loop_is_permerror(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("example.org", "TXT", "v=spf1 include:loop.example.net -all")
    local_dns.add("loop.example.net", "TXT", "v=spf1 include:example.org -all")
    result = await spf(settings, "192.0.2.1", "a@example.org")
    assert result.result == "permerror"
    assert "lookups" in result.reason
    assert len(local_dns.queries) <= 12  # stopped by the limit, not by luck


async def test_spf_more_than_ten_lookups_is_permerror(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    for n in range(1, 12):
        local_dns.add(f"h{n}.example.org", "A", f"198.51.100.{n}")
    ten = " ".join(f"a:h{n}.example.org" for n in range(1, 11))
    local_dns.add("example.org", "TXT", f"v=spf1 {ten} ip4:192.0.2.1 -all")
    assert (await spf(settings, "192.0.2.1", "a@example.org")).result == "pass"  # exactly 10
    local_dns.remove("example.org", "TXT")
    local_dns.add("example.org", "TXT", f"v=spf1 {ten} a:h11.example.org ip4:192.0.2.1 -all")
    result = await spf(settings, "192.0.2.1", "a@example.org")
    assert result.result == "permerror" and "more than 10" in result.reason


async def test_spf_more_than_two_void_lookups_is_permerror(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("example.org", "TXT", "v=spf1 a:v1.example.org a:v2.example.org -all")
    assert (await spf(settings, "192.0.2.1", "a@example.org")).result == "fail"
    local_dns.remove("example.org", "TXT")
    local_dns.add(
        "example.org", "TXT", "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org -all"
    )
    assert (await spf(settings, "192.0.2.1", "a@example.org")).result == "permerror"


async def test_spf_null_sender_checks_helo(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("mail.example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    result = await spf(settings, "192.0.2.1", "", helo="mail.example.org")
    assert (result.result, result.identity, result.domain) == ("pass", "helo", "mail.example.org")


async def test_spf_dns_failure_is_temperror(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.fail("example.org")
    assert (await spf(settings, "192.0.2.1", "a@example.org")).result == "temperror"
    local_dns.add("example.net", "TXT", "v=spf1 include:example.org -all")
    assert (await spf(settings, "192.0.2.1", "a@example.net")).result == "temperror"


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [  # RFC 7208 §7.4
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ("%{S}", "strong-bad%40email.example.com"),  # upper case: URL-escaped
        ("%%%_%-", "% %20"),
    ],
)
def test_spf_macro_expansion(settings: Settings, macro: str, expanded: str) -> None:
    check = _SpfCheck(
        make_resolver(settings),
        ipaddress.ip_address("192.0.2.3"),
        "strong-bad@email.example.com",
        "mail.example.com",
    )
    assert check.expand_macros(macro, "email.example.com") == expanded


def test_spf_ipv6_macro_expansion(settings: Settings) -> None:
    check = _SpfCheck(
        make_resolver(settings),
        ipaddress.ip_address("2001:db8::cb01"),
        "strong-bad@email.example.com",
        "mail.example.com",
    )
    assert check.expand_macros("%{ir}.%{v}._spf.%{d2}", "email.example.com") == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )


# ----- DKIM (RFC 6376) ---------------------------------------------------------------------------


async def test_dkim_signature_verifies_with_dkimpy_through_dns(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_key(local_dns, settings, "example.org")
    raw = message(extra="X-MSS-Type: CR\r\nReceived: from somewhere\r\n")
    signed = dkim_sign(settings, raw, "example.org")
    assert signed.startswith(b"DKIM-Signature: ") and signed.endswith(raw)

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = local_dns.port

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        return b"".join(answer[0].strings)

    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert ("caducee._domainkey.example.org", "TXT") in local_dns.queries
    header = signed[: -len(raw)].decode()
    tags = dkim.util.parse_tag_value(header.split(":", 1)[1].encode())
    fields = {k.decode(): re.sub(r"\s+", "", v.decode()) for k, v in tags.items()}
    assert fields["c"] == "relaxed/relaxed" and fields["a"] == "rsa-sha256"
    assert fields["d"] == "example.org" and fields["s"] == "caducee"
    signed_names = fields["h"].split(":")
    assert signed_names.count("from") == 2  # over-signed (RFC 6376 §8.15)
    assert "x-mss-type" in signed_names and "received" not in signed_names
    for name in ("to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in signed_names


async def test_dkim_pass_and_fail_inbound(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_key(local_dns, settings, "example.org")
    signed = dkim_sign(settings, message(), "example.org")
    verdict = await evaluate_inbound(settings, signed, OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim == (DkimResult("pass", "example.org", "caducee"),)

    altered_body = signed.replace(b"compte rendu", b"compte rendu falsifi\xc3\xa9")
    verdict = await evaluate_inbound(settings, altered_body, OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim[0].result == "fail" and "body hash" in verdict.dkim[0].reason

    altered_header = signed.replace(b"Subject: Compte rendu", b"Subject: Facture")
    verdict = await evaluate_inbound(settings, altered_header, OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim[0].result == "fail"


async def test_dkim_without_key_or_signature(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    signed = dkim_sign(settings, message(), "example.org")  # key not published
    verdict = await evaluate_inbound(settings, signed, OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim[0].result == "permerror" and verdict.dkim[0].reason == "no key"
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim == ()
    assert "dkim=none" in verdict.header()


async def test_dkim_signing_keeps_lf_line_endings(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_key(local_dns, settings, "example.org")
    raw = message().replace(b"\r\n", b"\n")
    signed = dkim_sign(settings, raw, "example.org")
    assert b"\r" not in signed
    verdict = await evaluate_inbound(settings, signed, OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim[0].result == "pass"


def test_dkim_sign_refuses_a_message_without_from(settings: Settings) -> None:
    with pytest.raises(Exception, match="From"):
        dkim_sign(settings, b"Subject: x\r\n\r\nbody\r\n", "example.org")


# ----- DMARC (RFC 7489) --------------------------------------------------------------------------


async def test_dmarc_pass_via_aligned_dkim(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_key(local_dns, settings, "example.org")
    local_dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; adkim=s")
    local_dns.add("lists.example.net", "TXT", "v=spf1 -all")
    signed = dkim_sign(settings, message(), "example.org")
    # Relayed by a mailing list: SPF of its envelope fails, the aligned signature survives.
    verdict = await evaluate_inbound(
        settings, signed, OUTSIDE_IP, "lists.example.net", "bounces@lists.example.net"
    )
    assert verdict.spf.result == "fail"
    assert verdict.dmarc == DmarcResult("pass", "example.org", "reject", "none", "example.org")
    assert verdict.dmarc_policy == "none"


async def test_dmarc_fail_with_reject_policy(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    local_dns.add("example.net", "TXT", f"v=spf1 ip4:{OUTSIDE_IP} -all")
    # SPF passes, but for another domain than From: not aligned.
    verdict = await evaluate_inbound(
        settings, message(), OUTSIDE_IP, "mx.example.net", "bounce@example.net"
    )
    assert verdict.spf.result == "pass"
    assert verdict.dmarc.result == "fail" and verdict.dmarc_policy == "reject"
    assert "dmarc=fail (p=reject dis=reject) header.from=example.org" in verdict.header()


async def test_dmarc_pass_via_aligned_spf(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    local_dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine")
    local_dns.add("bounce.example.org", "TXT", f"v=spf1 ip4:{OUTSIDE_IP} -all")
    verdict = await evaluate_inbound(
        settings, message(), OUTSIDE_IP, "mx.example.org", "b@bounce.example.org"
    )
    assert verdict.dmarc.result == "pass"  # relaxed: bounce.example.org ~ example.org
    local_dns.remove("_dmarc.example.org")
    local_dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine; aspf=s")
    verdict = await evaluate_inbound(
        settings, message(), OUTSIDE_IP, "mx.example.org", "b@bounce.example.org"
    )
    assert verdict.dmarc.result == "fail" and verdict.dmarc_policy == "quarantine"


@pytest.mark.parametrize(("adkim", "expected"), [("r", "pass"), ("s", "fail")])
async def test_dmarc_relaxed_and_strict_dkim_alignment(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
    adkim: str,
    expected: str,
) -> None:
    publish_key(local_dns, settings, "example.org")
    # The record is found at the organisational domain (§6.6.3), its sp= applies.
    local_dns.add("_dmarc.example.org", "TXT", f"v=DMARC1; p=none; sp=reject; adkim={adkim}")
    signed = dkim_sign(settings, message(from_="news@news.example.org"), "example.org")
    verdict = await evaluate_inbound(settings, signed, OUTSIDE_IP, "mx.example.org", "")
    assert verdict.dkim[0].result == "pass"
    assert verdict.dmarc.result == expected
    assert verdict.dmarc.from_domain == "news.example.org"
    assert verdict.dmarc.record_domain == "example.org" and verdict.dmarc.policy == "reject"


async def test_dmarc_none_pct_and_multiple_from(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "h.example.net", "")
    assert verdict.dmarc.result == "none" and verdict.dmarc_policy == "none"
    local_dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; pct=0")
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "h.example.net", "")
    assert verdict.dmarc.result == "fail" and verdict.dmarc_policy == "quarantine"  # §6.6.4
    two = message(extra="From: other@example.net\r\n")
    verdict = await evaluate_inbound(settings, two, OUTSIDE_IP, "h.example.net", "")
    assert verdict.dmarc.result == "permerror"
    assert verdict.from_domains == ("example.org", "example.net")


def test_organizational_domain() -> None:
    assert organizational_domain("a.b.cabinet-exemple.fr") == "cabinet-exemple.fr"
    assert organizational_domain("cabinet-exemple.fr") == "cabinet-exemple.fr"
    assert organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert organizational_domain("x.y.unknown-tld") == "y.unknown-tld"
    assert organizational_domain("fr") == "fr"


# ----- spoofing our own domains --------------------------------------------------------------


def publish_our_domain(local_dns: LocalDNS) -> None:  # noqa: F811
    local_dns.add(OUR_DOMAIN, "MX", f"10 mail.{OUR_DOMAIN}.")
    local_dns.add(f"mail.{OUR_DOMAIN}", "A", OUR_MX_IP)
    local_dns.add(OUR_DOMAIN, "TXT", "v=spf1 mx -all")
    local_dns.add(f"_dmarc.{OUR_DOMAIN}", "TXT", "v=DMARC1; p=quarantine; adkim=s; aspf=s")


async def test_spoof_of_our_domain_from_outside_is_rejected(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_our_domain(local_dns)
    forged = message(from_=f"Dr Martin <dr.martin@{OUR_DOMAIN}>")
    verdict = await evaluate_inbound(
        settings, forged, OUTSIDE_IP, "evil.example.net", f"dr.martin@{OUR_DOMAIN}"
    )
    assert verdict.spf.result == "fail" and verdict.dmarc.result == "fail"
    assert verdict.rejects_local_spoof({OUR_DOMAIN})
    assert not verdict.rejects_local_spoof({"autre.fr"})
    # From ours, envelope elsewhere (SPF passing for it): still a spoof.
    local_dns.add("evil.example.net", "TXT", f"v=spf1 ip4:{OUTSIDE_IP} -all")
    verdict = await evaluate_inbound(
        settings, forged, OUTSIDE_IP, "evil.example.net", "x@evil.example.net"
    )
    assert verdict.spf.result == "pass" and verdict.rejects_local_spoof({OUR_DOMAIN})
    # Envelope ours, From elsewhere: a spoof too.
    verdict = await evaluate_inbound(
        settings, message(), OUTSIDE_IP, "evil.example.net", f"x@{OUR_DOMAIN}"
    )
    assert verdict.rejects_local_spoof({OUR_DOMAIN})
    # A subdomain of ours counts as ours.
    sub = message(from_=f"x@sub.{OUR_DOMAIN}")
    verdict = await evaluate_inbound(settings, sub, OUTSIDE_IP, "evil.example.net", "")
    assert verdict.rejects_local_spoof({OUR_DOMAIN})

    assert "refusé" in spoof_reason("fr") and "587" in spoof_reason("fr")
    assert "refused" in spoof_reason("en")
    assert isinstance(spoof_error(), PolicyRejected)


async def test_authenticated_mail_from_our_domain_is_accepted(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_our_domain(local_dns)
    publish_key(local_dns, settings, OUR_DOMAIN)
    raw = message(from_=f"dr.martin@{OUR_DOMAIN}")
    # From our own MX address: SPF passes and is aligned.
    verdict = await evaluate_inbound(
        settings, raw, OUR_MX_IP, f"mail.{OUR_DOMAIN}", f"dr.martin@{OUR_DOMAIN}"
    )
    assert verdict.dmarc.result == "pass" and not verdict.rejects_local_spoof({OUR_DOMAIN})
    # Signed by us then forwarded from elsewhere: the aligned DKIM signature suffices.
    signed = dkim_sign(settings, raw, OUR_DOMAIN)
    verdict = await evaluate_inbound(
        settings, signed, OUTSIDE_IP, "forwarder.example.net", "fwd@forwarder.example.net"
    )
    assert verdict.dmarc.result == "pass" and not verdict.rejects_local_spoof({OUR_DOMAIN})
    # Mail from elsewhere is none of our business.
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "x.example.net", "")
    assert not verdict.rejects_local_spoof({OUR_DOMAIN})


# ----- DNS trouble, header syntax ----------------------------------------------------------------


async def test_dns_server_down_gives_temperror_not_exceptions(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish_key(local_dns, settings, "example.org")
    signed = dkim_sign(settings, message(), "example.org")
    local_dns.stop()
    monkeypatch.setattr(dns_service, "DEFAULT_TIMEOUT", 0.2)
    monkeypatch.setattr(dns_service, "DEFAULT_LIFETIME", 0.5)
    verdict = await evaluate_inbound(
        settings, signed, OUTSIDE_IP, "mx.example.org", "a@example.org"
    )
    assert verdict.spf.result == "temperror"
    assert verdict.dkim[0].result == "temperror"
    assert verdict.dmarc.result == "temperror"
    assert verdict.temporary_failure and verdict.dmarc_policy == "none"
    assert_parses(verdict)


async def test_servfail_and_silent_server_give_temperror(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_dns.fail("example.org")
    local_dns.fail("_dmarc.example.org")
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "h", "a@example.org")
    assert (verdict.spf.result, verdict.dmarc.result) == ("temperror", "temperror")
    monkeypatch.setattr(dns_service, "DEFAULT_TIMEOUT", 0.2)
    monkeypatch.setattr(dns_service, "DEFAULT_LIFETIME", 0.5)
    local_dns.silent = True
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "h", "a@example.net")
    assert (verdict.spf.result, verdict.dmarc.result) == ("temperror", "temperror")


async def test_bad_resolver_setting_gives_temperror(settings: Settings) -> None:
    settings.dns_resolver = "not-an-address:53"
    verdict = await evaluate_inbound(settings, message(), OUTSIDE_IP, "h", "a@example.org")
    assert verdict.spf.result == "temperror" and verdict.temporary_failure


def assert_parses(verdict: AuthVerdict) -> authres.AuthenticationResultsHeader:
    parsed = authres.FeatureContext(authres.dmarc).parse(verdict.header())
    assert parsed.authserv_id == "mx.caducee.test"
    folded = verdict.header_line().decode()
    assert folded.endswith("\r\n") and all(len(line) <= 998 for line in folded.split("\r\n"))
    unfolded = re.sub(r"\r\n[ \t]", " ", folded).rstrip("\r\n").replace(";  ", "; ")
    again = authres.FeatureContext(authres.dmarc).parse(unfolded)
    assert [r.method for r in again.results] == [r.method for r in parsed.results]
    return parsed


async def test_authentication_results_header_parses(
    local_dns: LocalDNS,  # noqa: F811
    settings: Settings,
) -> None:
    publish_key(local_dns, settings, "example.org")
    local_dns.add("example.org", "TXT", f"v=spf1 ip4:{OUTSIDE_IP} -all")
    local_dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    signed = dkim_sign(settings, message(), "example.org")
    tampered = dkim_sign(settings, message(), "example.org").replace(b"Voici", b"Voila")
    for raw, ip in ((signed, OUTSIDE_IP), (tampered, "198.51.100.1")):
        verdict = await evaluate_inbound(settings, raw, ip, "mx.example.org", "b@example.org")
        parsed = assert_parses(verdict)
        by_method = {r.method: r for r in parsed.results}
        assert by_method["spf"].result == verdict.spf.result
        assert by_method["spf"].smtp_mailfrom == "example.org"
        assert by_method["dkim"].result == verdict.dkim[0].result
        assert by_method["dkim"].header_d == "example.org"
        assert by_method["dmarc"].result == verdict.dmarc.result
        assert by_method["dmarc"].header_from == "example.org"
    assert verdict.header().startswith(
        "Authentication-Results: mx.caducee.test; spf=fail smtp.mailfrom=example.org; "
        'dkim=fail reason="body hash mismatch" header.d=example.org header.s=caducee; '
        "dmarc=fail (p=reject dis=reject) header.from=example.org"
    )
    # RFC 8601 grammar, roughly: authserv-id then "; method=result [reason] props" items.
    grammar = re.compile(
        r"^Authentication-Results: [\w.-]+"
        r'(; [a-z]+=[a-z]+( reason="[^"]*")?( \([^)]*\))?( [a-z]+\.[a-z]+=[^ ;]+)*)+$'
    )
    assert grammar.match(verdict.header())


def test_own_authentication_results_are_stripped() -> None:
    raw = (
        b"Authentication-Results: MX.caducee.test; spf=pass smtp.mailfrom=forged.example\r\n"
        b"Authentication-Results: other.example; dkim=pass\r\n"
        b"Authentication-Results: mx.caducee.test;\r\n\tdkim=pass header.d=forged.example\r\n"
        b"Subject: x\r\n\r\nAuthentication-Results: mx.caducee.test; body stays\r\n"
    )
    assert strip_own_results(raw, "mx.caducee.test") == (
        b"Authentication-Results: other.example; dkim=pass\r\n"
        b"Subject: x\r\n\r\nAuthentication-Results: mx.caducee.test; body stays\r\n"
    )


async def test_a_big_message_is_stamped_off_the_loop_as_a_small_one() -> None:
    """Received and our Authentication-Results go before the message, forged ones of ours
    dropped, in one copy: a big message's in a worker thread (``cpu_pool.copying``), with the
    same bytes as a small one's."""
    head = (
        b"Authentication-Results: mx.caducee.test; spf=pass smtp.mailfrom=forged.example\r\n"
        b"Subject: x\r\n\r\n"
    )
    ours = b"Received: from a by b\r\nAuthentication-Results: mx.caducee.test; spf=none\r\n"
    for body in (b"court\r\n", b"A" * 76 + b"\r\n" * 30_000):
        raw = head + body
        got = await cpu_pool.copying(len(raw), stamped, ours, raw, "mx.caducee.test")
        assert got == ours + b"Subject: x\r\n\r\n" + body
