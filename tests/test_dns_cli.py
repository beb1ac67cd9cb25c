"""``caducee dns``: the printed records are valid zone lines, and they work once published."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caducee.config import load_settings
from caducee.services.mail_auth import dkim_sign, evaluate_inbound
from tests.dnsserver import LocalDNS, local_dns  # noqa: F401 - the fixture

DOMAIN = "cabinet-exemple.fr"
HOST = f"mail.{DOMAIN}"


def caducee(*args: str, lang: str = "fr") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CADUCEE_LANG": lang},
    )


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("dns") / "data"
    result = caducee("init", "--data", str(data), "--domain", DOMAIN, "--practice", "Cabinet")
    assert result.returncode == 0, result.stderr
    return data


Record = tuple[str, str, dns.rdata.Rdata]


def parse_zone_lines(text: str) -> list[Record]:
    """Every non-comment line as (owner, type, rdata), parsed by dnspython."""
    records = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        owner, ttl, klass, rdtype, value = line.split("\t")
        assert owner.endswith(".") and int(ttl) > 0 and klass == "IN"
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), value)
        records.append((owner.rstrip("."), rdtype, rdata))
    return records


def txt(rdata: dns.rdata.Rdata) -> str:
    assert isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
    assert all(len(s) <= 255 for s in rdata.strings)
    return b"".join(rdata.strings).decode()


def test_init_creates_the_dkim_key(installation: Path) -> None:
    key = installation / "keys" / "dkim" / f"{DOMAIN}.caducee.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700


def test_dns_prints_every_record(installation: Path) -> None:
    result = caducee("dns", "--data", str(installation))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    records = parse_zone_lines(out)
    by_owner: dict[tuple[str, str], list[dns.rdata.Rdata]] = {}
    for owner, rdtype, rdata in records:
        by_owner.setdefault((owner, rdtype), []).append(rdata)

    assert [r.to_text() for r in by_owner[(DOMAIN, "MX")]] == [f"10 {HOST}."]
    assert [txt(r) for r in by_owner[(DOMAIN, "TXT")]] == ["v=spf1 mx -all"]
    assert [txt(r) for r in by_owner[(f"_dmarc.{DOMAIN}", "TXT")]] == [
        f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{DOMAIN}; adkim=s; aspf=s"
    ]
    srv = {
        owner.split(".")[0]: rdata.to_text()
        for (owner, rdtype), rdatas in by_owner.items()
        if rdtype == "SRV"
        for rdata in rdatas
    }
    assert srv == {
        "_submissions": f"0 1 465 {HOST}.",
        "_submission": f"0 1 587 {HOST}.",
        "_imaps": f"0 1 993 {HOST}.",
        "_imap": f"0 1 143 {HOST}.",
        "_pop3s": f"0 1 995 {HOST}.",
        "_pop3": f"0 1 110 {HOST}.",
    }
    for name in ("autoconfig", "autodiscover"):
        assert [r.to_text() for r in by_owner[(f"{name}.{DOMAIN}", "CNAME")]] == [f"{HOST}."]
    # A French comment per block, the address reminder commented out.
    for words in ("; MX :", "; SPF (RFC 7208)", "; DKIM (RFC 6376)", "; DMARC (RFC 7489)"):
        assert words in out
    assert f"; {HOST}.\t3600\tIN\tA\t<adresse IPv4 publique>" in out

    # The DKIM record carries the public half of the private key on disk.
    (dkim_txt,) = by_owner[(f"caducee._domainkey.{DOMAIN}", "TXT")]
    assert isinstance(dkim_txt, dns.rdtypes.ANY.TXT.TXT)
    assert len(dkim_txt.strings) > 1  # split into 255-octet strings
    tags = dict(part.strip().split("=", 1) for part in txt(dkim_txt).split(";"))
    assert tags["v"] == "DKIM1" and tags["k"] == "rsa"
    published = serialization.load_der_public_key(base64.b64decode(tags["p"]))
    pem = (installation / "keys" / "dkim" / f"{DOMAIN}.caducee.key").read_bytes()
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(published, rsa.RSAPublicKey) and isinstance(private, rsa.RSAPrivateKey)
    assert published.public_numbers() == private.public_key().public_numbers()


def test_dns_in_english(installation: Path) -> None:
    result = caducee("dns", "--data", str(installation), "--domain", DOMAIN, lang="en")
    assert result.returncode == 0, result.stderr
    assert "; MX: mail for" in result.stdout and "; MX :" not in result.stdout


async def test_published_records_authenticate_our_mail(
    installation: Path,
    local_dns: LocalDNS,  # noqa: F811
) -> None:
    result = caducee("dns", "--data", str(installation), "--domain", DOMAIN)
    assert result.returncode == 0, result.stderr
    for owner, rdtype, rdata in parse_zone_lines(result.stdout):
        local_dns.add(owner, rdtype, rdata.to_text())
    local_dns.add(HOST, "A", "192.0.2.25")
    settings = load_settings(installation)
    settings.dns_resolver = local_dns.resolver_spec
    raw = (
        f"From: Dr Martin <dr.martin@{DOMAIN}>\r\nTo: confrere@example.org\r\n"
        "Subject: Avis\r\nMessage-ID: <1@cabinet-exemple.fr>\r\n\r\nBonjour\r\n"
    ).encode()
    signed = dkim_sign(settings, raw, DOMAIN)
    verdict = await evaluate_inbound(settings, signed, "192.0.2.25", HOST, f"dr.martin@{DOMAIN}")
    assert (verdict.spf.result, verdict.dkim[0].result, verdict.dmarc.result) == (
        "pass",
        "pass",
        "pass",
    )
    assert verdict.dmarc.policy == "quarantine"
    forged = await evaluate_inbound(settings, raw, "203.0.113.9", "x", f"dr.martin@{DOMAIN}")
    assert forged.dmarc_policy == "quarantine" and forged.rejects_local_spoof({DOMAIN})


def test_dns_for_an_added_domain_creates_its_key(installation: Path) -> None:
    added = caducee(
        "practice", "update", "1", "--data", str(installation), "--add-domain", "second-cabinet.fr"
    )
    assert added.returncode == 0, added.stderr
    result = caducee("dns", "--data", str(installation))
    assert result.returncode == 0, result.stderr
    assert "Clé DKIM créée pour second-cabinet.fr" in result.stderr
    owners = {owner for owner, _, _ in parse_zone_lines(result.stdout)}
    assert {DOMAIN, "second-cabinet.fr", "caducee._domainkey.second-cabinet.fr"} <= owners
    assert (installation / "keys" / "dkim" / "second-cabinet.fr.caducee.key").exists()
    again = caducee("dns", "--data", str(installation), "--domain", "second-cabinet.fr")
    assert again.returncode == 0 and "créée" not in again.stderr
    assert all(o.endswith("second-cabinet.fr") for o, _, _ in parse_zone_lines(again.stdout))


def test_dns_refuses_an_unknown_or_invalid_domain(installation: Path) -> None:
    unknown = caducee("dns", "--data", str(installation), "--domain", "ailleurs.fr")
    assert unknown.returncode == 1
    assert "ailleurs.fr n'est pas servi par cette installation" in unknown.stderr
    invalid = caducee("dns", "--data", str(installation), "--domain", "pas un domaine")
    assert invalid.returncode == 1 and "Nom de domaine invalide" in invalid.stderr


def test_dev_ports_are_flagged(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    init = caducee(
        "init", "--data", str(data), "--domain", "dev.fr", "--practice", "Dev", "--dev-ports"
    )
    assert init.returncode == 0, init.stderr
    result = caducee("dns", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert "boucle locale" in result.stdout
