"""DKIM keys: created once, private, published as a valid RFC 6376 key record."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caducee.config import Settings
from caducee.errors import ConfigurationError, InvalidInput
from caducee.services.dkim_keys import (
    DkimKey,
    ensure_dkim_key,
    key_path,
    load_dkim_key,
    split_txt,
)
from caducee.services.mail_auth import dkim_sign


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hostname="mail.cabinet-exemple.fr")


def public_numbers(key: DkimKey) -> rsa.RSAPublicNumbers:
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.public_key().public_numbers()


def test_key_is_created_private_and_kept(settings: Settings) -> None:
    assert load_dkim_key(settings, "cabinet-exemple.fr") is None
    key = ensure_dkim_key(settings, "Cabinet-Exemple.FR.")
    assert key.domain == "cabinet-exemple.fr" and key.selector == "caducee"
    assert key.path == settings.keys_dir / "dkim" / "cabinet-exemple.fr.caducee.key"
    assert key.path.stat().st_mode & 0o777 == 0o600
    assert key.path.parent.stat().st_mode & 0o777 == 0o700
    assert settings.keys_dir.stat().st_mode & 0o777 == 0o700
    assert key.private_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    assert ensure_dkim_key(settings, "cabinet-exemple.fr") == key  # never replaced
    assert [p.name for p in key.path.parent.iterdir()] == [key.path.name]  # no leftovers


def test_dns_record_carries_the_public_key(settings: Settings) -> None:
    key = ensure_dkim_key(settings, "cabinet-exemple.fr")
    assert key.dns_name == "caducee._domainkey.cabinet-exemple.fr"
    text = key.dns_txt()
    assert text.startswith("v=DKIM1; k=rsa; p=")
    der = base64.b64decode(text.split("p=", 1)[1])
    published = serialization.load_der_public_key(der)
    assert isinstance(published, rsa.RSAPublicKey)
    assert published.public_numbers() == public_numbers(key)
    # dkimpy reads it as a valid key record (RFC 6376 §3.6.1).
    _, size, ktag, _ = dkim.evaluate_pk(key.dns_name.encode(), text.encode())
    assert (size, ktag) == (2048, b"rsa")
    strings = key.dns_txt_strings()
    assert len(strings) == 2 and all(len(s.encode()) <= 255 for s in strings)
    assert "".join(strings) == text


def test_split_txt() -> None:
    assert split_txt("a" * 600) == ["a" * 255, "a" * 255, "a" * 90]
    assert split_txt("v=spf1 -all") == ["v=spf1 -all"]


def test_selector_from_settings_and_explicit(settings: Settings) -> None:
    settings.dkim_selector = "s2026"
    key = ensure_dkim_key(settings, "cabinet-exemple.fr")
    assert key.dns_name == "s2026._domainkey.cabinet-exemple.fr"
    other = ensure_dkim_key(settings, "cabinet-exemple.fr", "rotation.b")
    assert other.path.name == "cabinet-exemple.fr.rotation.b.key"
    assert other.private_pem != key.private_pem


@pytest.mark.parametrize("domain", ["../../etc", "localhost", "a b.fr", ""])
def test_bad_domain_is_refused(settings: Settings, domain: str) -> None:
    with pytest.raises(InvalidInput):
        ensure_dkim_key(settings, domain)


@pytest.mark.parametrize("selector", ["../x", "a/b", "-x", "a..b", "é"])
def test_bad_selector_is_refused(settings: Settings, selector: str) -> None:
    with pytest.raises(InvalidInput, match="Sélecteur"):
        key_path(settings, "cabinet-exemple.fr", selector)


def test_readable_key_file_is_refused(settings: Settings) -> None:
    key = ensure_dkim_key(settings, "cabinet-exemple.fr")
    key.path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_dkim_key(settings, "cabinet-exemple.fr")


def test_corrupt_key_file_is_reported(settings: Settings) -> None:
    path = key_path(settings, "cabinet-exemple.fr")
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text("not a key")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="illisible"):
        ensure_dkim_key(settings, "cabinet-exemple.fr")


def test_concurrent_creation_yields_one_key(settings: Settings) -> None:
    keys: list[DkimKey] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        keys.append(ensure_dkim_key(settings, "cabinet-exemple.fr"))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({k.private_pem for k in keys}) == 1
    assert [p.name for p in key_path(settings, "cabinet-exemple.fr").parent.iterdir()] == [
        "cabinet-exemple.fr.caducee.key"
    ]


def test_signing_creates_a_missing_key(settings: Settings) -> None:
    raw = b"From: a@autre-domaine.fr\r\nSubject: x\r\n\r\nbody\r\n"
    signed = dkim_sign(settings, raw, "autre-domaine.fr")
    key = load_dkim_key(settings, "autre-domaine.fr")
    assert key is not None
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: key.dns_txt().encode())
