"""SASL OAUTHBEARER (RFC 7628) and XOAUTH2 with Python's imaplib and smtplib against a real
``caducee serve``, the tokens coming from a local OpenID provider (Pro Santé Connect's stand-in)."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import smtplib
import ssl
from pathlib import Path

import pytest
from sqlalchemy import update

from caducee.app import open_app
from caducee.config import Settings, render_config
from caducee.protocols.sasl_bearer import parse_oauthbearer, parse_xoauth2
from caducee.services.audit import iter_records
from caducee.store.tables import accounts
from tests.oidc_provider import AUDIENCE, CLIENT_ID, TestProvider
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
RPPS = "10003456784"
IDNAT = "8" + RPPS


def _setup(settings: Settings) -> None:
    async def go() -> None:
        async with open_app(settings) as app:
            await practice(app)
            account, _ = await person(app, LOGIN)
            await person(app, "autre@cabinet.test")
            async with app.db.write() as conn:
                await conn.execute(
                    update(accounts).where(accounts.c.id == account.id).values(rpps=RPPS)
                )

    asyncio.run(go())


def _oauthbearer(user: str, token: str) -> bytes:
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()


def _xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def test_bearer_tokens_on_imap_and_smtp(
    settings: Settings, tmp_path: Path, provider: TestProvider
) -> None:
    settings.oidc_issuer = provider.issuer
    settings.oidc_client_id = CLIENT_ID
    settings.oidc_audience = AUDIENCE
    prepare(settings, {"imaps": "127.0.0.1:0", "submissions": "127.0.0.1:0"})
    settings.config_path.write_text(render_config(settings), "utf-8")
    _setup(settings)
    context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    token = provider.access_token(IDNAT)
    with serve_process(settings, tmp_path) as proc:
        ports = {
            k: int(v.rsplit(":", 1)[1]) for k, v in wait_listeners(settings, proc, tmp_path).items()
        }
        imap = imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=context, timeout=10)
        assert "AUTH=OAUTHBEARER" in imap.capabilities and "AUTH=XOAUTH2" in imap.capabilities
        typ, _ = imap.authenticate("OAUTHBEARER", lambda _: _oauthbearer(LOGIN, token))
        assert typ == "OK"
        assert imap.select("INBOX")[0] == "OK"
        imap.logout()

        imap = imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=context, timeout=10)
        assert imap.authenticate("XOAUTH2", lambda _: _xoauth2(LOGIN, token))[0] == "OK"
        imap.logout()

        for bad_user, bad_token in (
            ("autre@cabinet.test", token),  # the token names another account
            (LOGIN, provider.access_token(IDNAT, lifetime=-120)),  # expired
            (LOGIN, provider.access_token(IDNAT, audience="ailleurs")),
        ):
            imap = imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=context, timeout=10)
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                imap.authenticate("XOAUTH2", lambda _: _xoauth2(bad_user, bad_token))  # noqa: B023
            imap.logout()

        with smtplib.SMTP_SSL("localhost", ports["submissions"], context=context) as smtp:
            smtp.ehlo()
            assert "OAUTHBEARER" in smtp.esmtp_features["auth"]
            initial = base64.b64encode(_oauthbearer(LOGIN, token)).decode()
            code, _ = smtp.docmd("AUTH", f"OAUTHBEARER {initial}")
            assert code == 235
            smtp.sendmail(
                LOGIN, [LOGIN], f"From: {LOGIN}\r\nSubject: jeton\r\n\r\nAvec un jeton.\r\n"
            )
        with smtplib.SMTP_SSL("localhost", ports["submissions"], context=context) as smtp:
            smtp.ehlo()
            expired = provider.access_token(IDNAT, lifetime=-120)
            initial = base64.b64encode(_xoauth2(LOGIN, expired)).decode()
            code, _ = smtp.docmd("AUTH", f"XOAUTH2 {initial}")
            assert code == 535

    async def audited() -> list[str]:
        async with open_app(settings) as app:
            return [
                f"{r.result}:{r.details}"
                async for r in iter_records(app.db)
                if r.action == "auth.mail" and '"oauth"' in r.details
            ]

    records = asyncio.run(audited())
    assert any(r.startswith("ok:") for r in records)
    assert any("other_account" in r for r in records) and any("bad_token" in r for r in records)
    assert all(token not in r for r in records)


@pytest.mark.parametrize(
    "response",
    [
        b"",
        b"n,,\x01\x01",
        b"n,,\x01auth=Basic abc\x01\x01",
        b"p=tls-unique,,\x01auth=Bearer x\x01\x01",
        b"n,a=x,\x01auth=Bearer tok\x01",  # missing the final kvsep
        b"n,a=\xff,\x01auth=Bearer tok\x01\x01",
    ],
)
def test_malformed_oauthbearer(response: bytes) -> None:
    assert parse_oauthbearer(response) is None


def test_bearer_parsing() -> None:
    assert parse_oauthbearer(b"n,a=dr=2Cx@c.test,\x01host=h\x01auth=Bearer t.k.n\x01\x01") == (
        "dr,x@c.test",
        "t.k.n",
    )
    assert parse_oauthbearer(b"n,,\x01auth=Bearer tok\x01\x01") == ("", "tok")
    assert parse_xoauth2(b"user=dr@c.test\x01auth=Bearer tok\x01\x01") == ("dr@c.test", "tok")
    assert parse_xoauth2(b"auth=Bearer tok\x01\x01") is None
