"""CAPABILITY, STARTTLS / LOGINDISABLED, LOGIN, AUTHENTICATE PLAIN (SASL-IR), ENABLE, ID."""

from __future__ import annotations

import base64

from tests.protocols.conftest import sasl_plain
from tests.protocols.imap.conftest import LOGIN, Client, ImapServer, tagged, transcript
from tests.services.helpers import PASSWORD


async def test_plain_port_needs_starttls_before_login(server: ImapServer) -> None:
    c = await Client.connect(server.plain)
    assert "LOGINDISABLED" in c.greeting and "STARTTLS" in c.greeting
    caps = (await c.ok("CAPABILITY"))[0]
    assert "AUTH=PLAIN" not in caps and "LOGINDISABLED" in caps
    assert tagged(await c.command(f"LOGIN {LOGIN} {server.password}")).startswith(
        "NO [PRIVACYREQUIRED]"
    )
    assert tagged(await c.command("AUTHENTICATE PLAIN")).startswith("NO [PRIVACYREQUIRED]")
    assert tagged(await c.command("SELECT INBOX")).startswith("BAD")  # not authenticated
    await c.ok("STARTTLS")
    await c.writer.start_tls(server.client_tls, server_hostname="localhost")
    caps = (await c.ok("CAPABILITY"))[0]
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert tagged(await c.command("STARTTLS")).startswith("BAD")
    response = await c.ok(f"LOGIN {LOGIN} {server.password}")
    assert "[CAPABILITY IMAP4rev1 IMAP4rev2" in response[-1] and "IDLE" in response[-1]
    await c.ok("SELECT INBOX")
    await c.close()


async def test_only_app_passwords_and_wrong_ones_are_refused(server: ImapServer) -> None:
    c = await Client.connect(server.implicit, server.client_tls)
    assert "AUTH=PLAIN" in c.greeting and "SASL-IR" in c.greeting
    assert tagged(await c.command(f"LOGIN {LOGIN} {PASSWORD}")).startswith(
        "NO [AUTHENTICATIONFAILED]"
    )
    assert tagged(await c.command(f"LOGIN nobody@cabinet.test {PASSWORD}")).startswith(
        "NO [AUTHENTICATIONFAILED]"
    )
    await c.ok(f'LOGIN "{LOGIN}" "{server.password}"')
    assert tagged(await c.command(f"LOGIN {LOGIN} {server.password}")).startswith("BAD")
    await c.close()


async def test_authenticate_plain_with_and_without_initial_response(server: ImapServer) -> None:
    token = sasl_plain(LOGIN, server.password)
    c = await Client.connect(server.implicit, server.client_tls)
    await c.ok(f"AUTHENTICATE PLAIN {token}")  # RFC 4959 SASL-IR
    await c.close()
    c = await Client.connect(server.implicit, server.client_tls)
    await c.send_raw(b"t1 AUTHENTICATE PLAIN\r\n")
    assert await c.line() == "+ "
    await c.send_raw(b"*\r\n")
    assert (await c.line()).startswith("t1 BAD")
    await c.send_raw(b"t2 AUTHENTICATE PLAIN\r\n")
    assert await c.line() == "+ "
    await c.send_raw(token.encode() + b"\r\n")
    assert (await c.line()).startswith("t2 OK [CAPABILITY")
    assert tagged(await c.command("AUTHENTICATE XOAUTH2 abc")).startswith("BAD")  # authenticated
    await c.close()
    c = await Client.connect(server.implicit, server.client_tls)
    assert tagged(await c.command("AUTHENTICATE GSSAPI")).startswith("NO")
    assert tagged(await c.command("AUTHENTICATE PLAIN !!!")).startswith("BAD")
    bad = base64.b64encode(f"autre@cabinet.test\0{LOGIN}\0{server.password}".encode()).decode()
    assert tagged(await c.command(f"AUTHENTICATE PLAIN {bad}")).startswith(
        "NO [AUTHORIZATIONFAILED]"
    )
    await c.close()


async def test_authenticate_plain_malformed_is_bad_never_a_failed_login(server: ImapServer) -> None:
    """The one PLAIN decoder (RFC 4616 §2): an empty authcid or password, or the empty response
    "=", is a malformed response (BAD), not a wrong password checked against the account."""
    c = await Client.connect(server.implicit, server.client_tls)
    await transcript(
        c,
        f"""
        C: p1 AUTHENTICATE PLAIN {sasl_plain(LOGIN, "")}
        S: p1 BAD Reponse PLAIN incomplete / Incomplete PLAIN response
        C: p2 AUTHENTICATE PLAIN {sasl_plain("", server.password, LOGIN)}
        S: p2 BAD Reponse PLAIN incomplete / Incomplete PLAIN response
        C: p3 AUTHENTICATE PLAIN =
        S: p3 BAD Reponse PLAIN mal formee / Malformed PLAIN response
        C: p4 AUTHENTICATE PLAIN
        S: +<SP>
        C: {sasl_plain(LOGIN, server.password)[:-1]}
        S: p4 BAD Reponse base64 illisible / Cannot Base64-decode client response
        C: p5 AUTHENTICATE PLAIN {sasl_plain(LOGIN, server.password, LOGIN.upper())}
        S: p5 OK [CAPABILITY ...] ...
        """,
    )


async def test_enable_id_noop_logout(server: ImapServer) -> None:
    c = await server.client()
    await transcript(
        c,
        """
        C: e1 ENABLE CONDSTORE UTF8=ACCEPT X-UNKNOWN
        S: * ENABLED CONDSTORE UTF8=ACCEPT
        S: e1 OK ...
        C: e2 ENABLE CONDSTORE
        S: * ENABLED
        S: e2 OK ...
        C: e3 ID ("name" "test-client" "version" "1")
        S: * ID ("name" "Caducee"...
        S: e3 OK ...
        C: e4 NOOP
        S: e4 OK ...
        C: e5 LOGOUT
        S: * BYE ...
        S: e5 OK ...
        """,
    )


async def test_too_many_bad_commands_end_the_session(server: ImapServer) -> None:
    c = await Client.connect(server.implicit, server.client_tls)
    for _ in range(19):
        assert tagged(await c.command("BLAH")).startswith("BAD")
    await c.send_raw(b"x BLAH\r\n")
    assert (await c.line()).startswith("* BYE")
