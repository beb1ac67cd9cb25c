"""DNS answers are kept as long as their TTL allows, negative ones (RFC 2308) included."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

import tests.dnsserver
from caducee.config import Settings
from caducee.services.dns import lookup, make_resolver
from tests.dnsserver import LocalDNS


def settings_for(server: LocalDNS, tmp_path: object) -> Settings:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    settings.dns_resolver = server.resolver_spec
    return settings


async def test_answers_follow_their_ttl(tmp_path: object) -> None:
    with LocalDNS(ttl=0) as fresh, LocalDNS(ttl=300) as kept:
        for server in (fresh, kept):
            server.add("cabinet.test", "TXT", "v=spf1 -all")
        for server, still_seen in ((fresh, False), (kept, True)):
            resolver = make_resolver(settings_for(server, tmp_path))
            assert (await lookup(resolver, "cabinet.test", "TXT")).texts() == ["v=spf1 -all"]
            server.remove("cabinet.test")
            again = await lookup(resolver, "cabinet.test", "TXT")
            assert bool(again) is still_seen


async def test_a_name_error_is_kept_for_the_soa_minimum(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalDNS(ttl=0) as uncached:  # SOA MINIMUM 0: never kept
        resolver = make_resolver(settings_for(uncached, tmp_path))
        assert (await lookup(resolver, "_dmarc.neuf.test", "TXT")).nxdomain
        uncached.add("_dmarc.neuf.test", "TXT", "v=DMARC1; p=none")
        assert (await lookup(resolver, "_dmarc.neuf.test", "TXT")).texts()
    soa = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA, "ns.local. hostmaster.local. 1 0 0 0 600"
    )
    monkeypatch.setattr(tests.dnsserver, "_SOA", soa)  # the test server's zone, not our code
    with LocalDNS(ttl=600) as cached:
        resolver = make_resolver(settings_for(cached, tmp_path))
        assert (await lookup(resolver, "_dmarc.vieux.test", "TXT")).nxdomain
        asked = len(cached.queries)
        cached.add("_dmarc.vieux.test", "TXT", "v=DMARC1; p=none")
        assert (await lookup(resolver, "_dmarc.vieux.test", "TXT")).nxdomain
        assert len(cached.queries) == asked  # answered without asking the server again
