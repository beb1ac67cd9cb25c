"""SMTP transcripts over real loopback sockets (plain, STARTTLS, implicit TLS), both backends.

Each test reads like a session: what the client sends (C:), what the server answers (S:).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from email.parser import BytesHeaderParser

import pytest

from caducee.listeners import ListenAddress
from caducee.protocols.smtp.handler import MxHandler
from caducee.protocols.smtp.listener import SmtpListener
from caducee.protocols.smtp.state import SessionInfo
from caducee.services import mailboxes, queue
from caducee.services.envelope import Envelope
from tests.protocols.conftest import sasl_plain
from tests.protocols.smtp.conftest import (
    HOST,
    LOGIN,
    OTHER,
    TEST_MAX_BYTES,
    SmtpClient,
    SmtpServer,
    limits_for_tests,
    port_of,
    start_listeners,
    transcript,
)
from tests.protocols.smtp.helpers import message_count, stored_messages, used_bytes, without_trace
from tests.services.helpers import person

GREETING = f"S: 220 {HOST} ESMTP Caducee"


def ehlo(*extra: str) -> str:
    """The expected EHLO reply: what every door offers, then ``extra`` keywords."""
    keywords = [
        f"{HOST} Bonjour [127.0.0.1]",
        f"SIZE {TEST_MAX_BYTES}",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
        *extra,
    ]
    return "\n".join(
        f"S: 250{' ' if i == len(keywords) - 1 else '-'}{k}" for i, k in enumerate(keywords)
    )


MX_EHLO = ehlo("STARTTLS")


def mail(subject: str, body: str = "Bonjour,\r\n\r\nCordialement.\r\n") -> bytes:
    return (
        f"From: Dr Externe <a@ailleurs.test>\r\nTo: {LOGIN}\r\nSubject: {subject}\r\n\r\n{body}"
    ).encode()


# --- greeting, EHLO, the simple commands -----------------------------------------------------


async def test_mx_greeting_ehlo_and_simple_commands(server: SmtpServer) -> None:
    client = await server.client("smtp", greeting=False)
    await transcript(
        client,
        f"""
        {GREETING}
        C: EHLO client.test
        {MX_EHLO}
        C: HELO client.test
        S: 250 {HOST} Bonjour [127.0.0.1]
        C: NOOP
        S: 250 2.0.0 Ok / Ok
        C: VRFY dr
        S: 252 2.5.0 Verification impossible, * / Cannot VRFY user, *
        C: EXPN liste
        S: 502 5.5.1 Commande non disponible / Command not implemented
        C: HELP
        S: 214-2.0.0 Commandes / commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET *
        S: 214 2.0.0 Voir / see RFC 5321
        C: RSET
        S: 250 2.0.0 Transaction annulee / Reset OK
        C: FOO bar
        S: 500 5.5.1 Commande inconnue / Unknown command
        C: QUIT
        S: 221 2.0.0 Au revoir / Bye
        CLOSED
        """,
    )


async def test_auth_is_not_offered_on_the_mx(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await transcript(
        client,
        f"""
        C: EHLO client.test
        {MX_EHLO}
        C: AUTH PLAIN {sasl_plain(LOGIN, server.password)}
        S: 503 5.5.1 AUTH non disponible sur ce port / AUTH not available here
        C: MAIL FROM:<a@ailleurs.test> AUTH=<>
        S: 555 5.5.4 Parametre AUTH non reconnu / AUTH parameter not recognized
        """,
    )


# --- STARTTLS (RFC 3207) ---------------------------------------------------------------------


async def test_starttls_discards_state_and_is_offered_once(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await transcript(
        client,
        f"""
        C: STARTTLS
        S: 503 5.5.1 Envoyez EHLO d'abord / Send EHLO first
        C: EHLO client.test
        {MX_EHLO}
        C: MAIL FROM:<a@ailleurs.test>
        S: 250 2.1.0 Expediteur accepte / Sender OK
        C: STARTTLS
        S: 220 2.0.0 Pret pour TLS / Ready to start TLS
        TLS
        C: RCPT TO:<{LOGIN}>
        S: 503 5.5.1 Envoyez MAIL d'abord / Send MAIL first
        C: MAIL FROM:<a@ailleurs.test>
        S: 503 5.5.1 Envoyez EHLO d'abord / Send EHLO first
        C: EHLO client.test
        {ehlo()}
        C: STARTTLS
        S: 503 5.5.1 TLS deja actif / TLS already active
        """,
        tls=server.client_tls,
    )


async def test_commands_pipelined_after_starttls_close_the_session(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await client.command("EHLO client.test")
    # A man in the middle appends a command after STARTTLS: it must never run under TLS.
    await transcript(
        client,
        """
        C: STARTTLS
        C: MAIL FROM:<injected@ailleurs.test>
        S: 554 5.5.1 Donnees envoyees apres STARTTLS * / Data pipelined after STARTTLS
        CLOSED
        """,
    )


# --- the MX: a whole transaction -------------------------------------------------------------


async def test_mx_delivery_stores_the_exact_bytes(server: SmtpServer) -> None:
    body = mail("Compte rendu", "ligne 1\r\n.point en debut\r\n..deux points\r\nfin\r\n")
    client = await server.client("smtp")
    await client.command("EHLO mx.ailleurs.test")
    await transcript(
        client,
        f"""
        C: MAIL FROM:<a@ailleurs.test> SIZE={len(body)} BODY=8BITMIME
        S: 250 2.1.0 Expediteur accepte / Sender OK
        C: RCPT TO:<inconnu@cabinet.test>
        S: 550 5.1.1 Destinataire inconnu : inconnu@cabinet.test n'existe pas sur ce serveur. / Unknown recipient: inconnu@cabinet.test does not exist on this server.
        C: RCPT TO:<Dr@Cabinet.Test>
        S: 250 2.1.5 Destinataire accepte / Recipient OK
        C: DATA
        S: 354 Envoyez le message, terminez par <CRLF>.<CRLF> / End data with <CRLF>.<CRLF>
        """,  # noqa: E501
    )
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    assert await client.command(stuffed + b".\r\n") == [
        "250 2.0.0 Message accepte / Message accepted"
    ]
    [stored] = await stored_messages(server.app)
    assert without_trace(stored) == body
    received = " ".join(BytesHeaderParser().parsebytes(stored)["Received"].split())
    assert "from mx.ailleurs.test ([127.0.0.1])" in received
    assert f"by {HOST} with ESMTP id" in received and "for <dr@cabinet.test>" in received
    assert await used_bytes(server.app) == len(stored)


async def test_received_header_names_tls_and_the_protocol(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await client.command("EHLO mx.ailleurs.test")
    await client.command("STARTTLS")
    await client.starttls(server.client_tls)
    await client.command("EHLO mx.ailleurs.test")
    assert (await client.send_message("a@ailleurs.test", [LOGIN], mail("tls"))).startswith("250")
    [stored] = await stored_messages(server.app)
    received = " ".join(BytesHeaderParser().parsebytes(stored)["Received"].split())
    assert "with ESMTPS id" in received
    assert "(using TLSv1.3 TLS_AES_256_GCM_SHA384)" in received


async def test_pipelined_transaction_gets_its_replies_in_order(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await client.command("EHLO client.test")
    await transcript(
        client,
        f"""
        C: MAIL FROM:<a@ailleurs.test>
        C: RCPT TO:<personne@cabinet.test>
        C: RCPT TO:<{LOGIN}>
        C: RCPT TO:<{OTHER}>
        C: DATA
        S: 250 2.1.0 *
        S: 550 5.1.1 Destinataire inconnu *
        S: 250 2.1.5 *
        S: 250 2.1.5 *
        S: 354 *
        """,
    )
    # The dot, then the next transaction, in one write: answered in order too.
    await client.send(
        mail("un") + b".\r\nMAIL FROM:<>\r\nRCPT TO:<" + LOGIN.encode() + b">\r\nDATA\r\n"
    )
    assert [(await client.reply())[0][:9] for _ in range(4)] == [
        "250 2.0.0",
        "250 2.1.0",
        "250 2.1.5",
        "354 Envoy",
    ]
    assert await client.command(mail("deux") + b".\r\n") == [
        "250 2.0.0 Message accepte / Message accepted"
    ]
    assert await message_count(server.app) == 3  # two copies of "un", one of "deux"


async def test_postmaster_without_domain_is_accepted_when_it_exists(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await client.command("EHLO client.test")
    await client.command("MAIL FROM:<a@ailleurs.test>")
    assert (await client.code("RCPT TO:<Postmaster>")).startswith("550 5.1.1")
    await person(server.app, "postmaster@cabinet.test")
    assert (await client.code("RCPT TO:<Postmaster>")).startswith("250 2.1.5")


async def test_sequence_errors(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await transcript(
        client,
        """
        C: MAIL FROM:<a@ailleurs.test>
        S: 503 5.5.1 Envoyez EHLO d'abord / Send EHLO first
        C: EHLO client.test
        S: 250-*
        S: 250-*
        S: 250-*
        S: 250-*
        S: 250-*
        S: 250-*
        S: 250-*
        S: 250-*
        S: 250 STARTTLS
        C: RCPT TO:<dr@cabinet.test>
        S: 503 5.5.1 Envoyez MAIL d'abord / Send MAIL first
        C: DATA
        S: 503 5.5.1 Envoyez MAIL d'abord / Send MAIL first
        C: MAIL FROM:<a@ailleurs.test>
        S: 250 2.1.0 *
        C: MAIL FROM:<a@ailleurs.test>
        S: 503 5.5.1 Transaction deja commencee (MAIL) / Nested MAIL command
        C: DATA
        S: 554 5.5.1 Aucun destinataire valide / No valid recipients
        C: DATA extra
        S: 501 5.5.4 Cette commande ne prend pas d'argument / No argument expected
        C: RSET
        S: 250 2.0.0 *
        C: RCPT TO:<dr@cabinet.test>
        S: 503 5.5.1 Envoyez MAIL d'abord / Send MAIL first
        """,
    )


async def test_syntax_errors_and_parameters(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await transcript(
        client,
        f"""
        C: HELO
        S: 501 5.5.4 Syntaxe : HELO <nom de domaine> / Syntax: HELO <domain>
        C: HELO client.test
        S: 250 {HOST} *
        C: MAIL FROM:<a@ailleurs.test> SIZE=10
        S: 555 5.5.4 Parametres ESMTP refuses apres HELO : utilisez EHLO / *
        C: EHLO client.test
        {MX_EHLO}
        C: MAIL FROM:a@ailleurs.test
        S: 501 5.1.7 Syntaxe : MAIL FROM:<adresse> (ou <>) / Syntax: MAIL FROM:<address> (or <>)
        C: MAIL FROM:<a@ailleurs.test> FROBNICATE=1
        S: 555 5.5.4 Parametre FROBNICATE non reconnu / FROBNICATE parameter not recognized
        C: MAIL FROM:<a@ailleurs.test> SIZE=abc
        S: 501 5.5.4 Valeur invalide pour SIZE / Invalid value for SIZE
        C: MAIL FROM:<a@ailleurs.test> SIZE={TEST_MAX_BYTES + 1}
        S: 552 5.3.4 Message trop volumineux : {TEST_MAX_BYTES} octets au plus / *
        C: MAIL FROM:<élise@ailleurs.test>
        S: 553 5.6.7 Adresse non ASCII sans le parametre SMTPUTF8 / *
        C: MAIL FROM:<a@ailleurs.test> RET=HDRS ENVID=QQ+2Bx
        S: 250 2.1.0 *
        C: RCPT TO:<dr@cabinet.test> NOTIFY=NEVER,SUCCESS
        S: 501 5.5.4 Valeur invalide pour NOTIFY / Invalid value for NOTIFY
        C: RCPT TO:<dr@cabinet.test> NOTIFY=success,Delay ORCPT=rfc822;Dr+2BCR@Cabinet.test
        S: 250 2.1.5 *
        C: RCPT TO:<élise@cabinet.test>
        S: 553 5.6.7 *
        """,
    )


async def test_dsn_parameters_reach_the_queue_with_their_case(server: SmtpServer) -> None:
    client = await server.submitter()
    await transcript(
        client,
        f"""
        C: MAIL FROM:<{LOGIN}> RET=HDRS ENVID=Dossier+2B42-AbC
        C: RCPT TO:<Confrere@Ailleurs.test> NOTIFY=success,Delay ORCPT=rfc822;Confrere+2BX@Ailleurs.test
        C: DATA
        S: 250 2.1.0 *
        S: 250 2.1.5 *
        S: 354 *
        C: From: {LOGIN}
        C: Subject: DSN
        C:
        C: corps
        C: .
        S: 250 2.0.0 Message accepte / Message accepted
        """,  # noqa: E501
    )
    [row] = await queue.list_queue(server.app)
    assert row.envid == "Dossier+42-AbC"  # xtext-decoded, case kept
    assert row.ret == "HDRS"
    assert row.notify == ("SUCCESS", "DELAY")
    assert row.orcpt == "rfc822;Confrere+2BX@Ailleurs.test"  # verbatim
    assert row.mail_from == LOGIN


async def test_smtputf8_addresses_and_headers(server: SmtpServer) -> None:
    body = "From: Élise <élise@ailleurs.test>\r\nSubject: Résultat\r\n\r\nDonnées\r\n".encode()
    client = await server.client("smtp")
    await client.command("EHLO client.test")
    reply = await client.send_message(
        "élise@ailleurs.test", [LOGIN], body, mail_params=" SMTPUTF8 BODY=8BITMIME"
    )
    assert reply == "250 2.0.0 Message accepte / Message accepted"
    [stored] = await stored_messages(server.app)
    assert without_trace(stored) == body
    assert b"with UTF8SMTP\r\n\tid " in stored


async def test_too_many_recipients(server: SmtpServer) -> None:
    await person(server.app, "troisieme@cabinet.test")
    limits = limits_for_tests(max_recipients=2)
    [listener] = (await start_listeners(server.app, limits, ("smtp",))).values()
    try:
        client = await SmtpClient.connect(port_of(listener))
        server.clients.append(client)
        await client.reply()
        await client.command("EHLO client.test")
        await transcript(
            client,
            f"""
            C: MAIL FROM:<a@ailleurs.test>
            C: RCPT TO:<{LOGIN}>
            C: RCPT TO:<{OTHER}>
            C: RCPT TO:<troisieme@cabinet.test>
            C: RCPT TO:<{LOGIN}>
            S: 250 2.1.0 *
            S: 250 2.1.5 *
            S: 250 2.1.5 *
            S: 452 4.5.3 Trop de destinataires pour ce message / Too many recipients
            S: 452 4.5.3 *
            C: DATA
            S: 354 *
            """,
        )
    finally:
        await listener.stop(1)


async def test_full_mailbox_gets_452_at_rcpt(server: SmtpServer) -> None:
    await mailboxes.set_quota(server.app, LOGIN, 1024 * 1024)
    client = await server.client("smtp")
    await client.command("EHLO client.test")
    await client.command(f"MAIL FROM:<a@ailleurs.test> SIZE={2 * 1024 * 1024}")
    assert await client.command(f"RCPT TO:<{LOGIN}>") == [
        "452 4.2.2 La boite dr@cabinet.test est pleine ; reessayez plus tard. "
        "/ Mailbox dr@cabinet.test is full; try again later."
    ]


# --- limits ----------------------------------------------------------------------------------


async def test_too_many_errors_close_the_session(server: SmtpServer) -> None:
    client = await server.client("smtp")
    for _ in range(9):
        assert (await client.code("BOGUS")).startswith("500 5.5.1")
    assert await client.command("BOGUS") == ["500 5.5.1 Commande inconnue / Unknown command"]
    assert await client.reply() == [
        f"421 4.7.0 {HOST} Trop d'erreurs, fermeture de la connexion / Too many errors, closing"
    ]
    assert await client.at_eof()


async def test_idle_timeout_closes_with_421(server: SmtpServer) -> None:
    [listener] = (
        await start_listeners(server.app, limits_for_tests(idle_timeout=0.3), ("smtp",))
    ).values()
    try:
        client = await SmtpClient.connect(port_of(listener))
        server.clients.append(client)
        await client.reply()
        assert (await client.command("EHLO client.test"))[-1] == "250 STARTTLS"
        assert await client.line(timeout=5) == (
            f"421 4.4.2 {HOST} Delai d'inactivite depasse / Idle timeout, closing"
        )
        assert await client.at_eof()
    finally:
        await listener.stop(1)


async def test_per_address_connection_limits(server: SmtpServer) -> None:
    limits = limits_for_tests(max_connections_per_ip=2, connections_per_minute=60_000)
    [listener] = (await start_listeners(server.app, limits, ("smtp",))).values()
    refusal = f"421 4.7.0 {HOST} Trop de connexions, reessayez plus tard / Too many connections, try later"  # noqa: E501
    try:
        port = port_of(listener)
        first, second, third = [await SmtpClient.connect(port) for _ in range(3)]
        server.clients += [first, second, third]
        assert (await first.line()).startswith("220 ")
        assert (await second.line()).startswith("220 ")
        assert await third.line() == refusal
        assert await third.at_eof()
        await first.command("QUIT")
        await asyncio.sleep(0.2)
        fourth = await SmtpClient.connect(port)
        server.clients.append(fourth)
        assert (await fourth.line()).startswith("220 ")
    finally:
        await listener.stop(1)
    # The rate: a token bucket of 3 connections per minute.
    limits = limits_for_tests(max_connections_per_ip=100, connections_per_minute=3)
    [listener] = (await start_listeners(server.app, limits, ("smtp",))).values()
    try:
        port = port_of(listener)
        lines = []
        for _ in range(4):
            client = await SmtpClient.connect(port)
            server.clients.append(client)
            lines.append(await client.line())
        assert [line[:4] for line in lines] == ["220 ", "220 ", "220 ", "421 "]
        assert lines[3] == refusal
    finally:
        await listener.stop(1)


async def test_stopping_the_listener_says_421(server: SmtpServer) -> None:
    [listener] = (await start_listeners(server.app, limits_for_tests(), ("smtp",))).values()
    client = await SmtpClient.connect(port_of(listener))
    server.clients.append(client)
    await client.reply()
    await client.command("EHLO client.test")
    await listener.stop(0.2)
    assert await client.line() == (
        f"421 4.3.2 {HOST} Arret du service, reessayez plus tard / Service shutting down, try later"
    )


# --- submission (587 STARTTLS, 465 implicit TLS) ---------------------------------------------


async def test_plain_submission_demands_tls_before_auth(server: SmtpServer) -> None:
    client = await server.client("submission")
    await transcript(
        client,
        f"""
        C: EHLO client.test
        {MX_EHLO}
        C: AUTH PLAIN {sasl_plain(LOGIN, server.password)}
        S: 538 5.7.11 Chiffrement requis pour s'authentifier : envoyez STARTTLS d'abord / Encryption required for requested authentication mechanism
        C: MAIL FROM:<{LOGIN}>
        S: 530 5.7.0 Chiffrement requis : envoyez STARTTLS puis AUTH / Must issue a STARTTLS command first, then AUTH
        C: STARTTLS
        S: 220 2.0.0 *
        TLS
        C: EHLO client.test
        {ehlo("AUTH PLAIN LOGIN")}
        C: MAIL FROM:<{LOGIN}>
        S: 530 5.7.0 Authentification requise (AUTH) / Authentication required
        C: AUTH PLAIN {sasl_plain(LOGIN, server.password)}
        S: 235 2.7.0 Authentification reussie / Authentication succeeded
        C: AUTH PLAIN {sasl_plain(LOGIN, server.password)}
        S: 503 5.5.1 Deja authentifie / Already authenticated
        """,  # noqa: E501
        tls=server.client_tls,
    )


async def test_auth_mechanisms_and_failures(server: SmtpServer) -> None:
    client = await server.client("submissions")
    user = base64.b64encode(LOGIN.encode()).decode()
    secret = base64.b64encode(server.password.encode()).decode()
    await transcript(
        client,
        f"""
        C: EHLO client.test
        {ehlo("AUTH PLAIN LOGIN")}
        C: AUTH CRAM-MD5
        S: 504 5.5.4 Mecanisme d'authentification inconnu / Unrecognized authentication type
        C: AUTH PLAIN !!!
        S: 501 5.5.2 Reponse base64 illisible / Cannot Base64-decode client response
        C: AUTH PLAIN
        S: 334<SP>
        C: *
        S: 501 5.7.0 Authentification annulee par le client / Authentication cancelled
        C: AUTH PLAIN {sasl_plain(LOGIN, "mauvais-mot-de-passe")}
        S: 535 5.7.8 Identifiant ou mot de passe incorrect (utilisez un mot de passe d'application) / Authentication credentials invalid (use an app password)
        C: AUTH PLAIN {base64.b64encode(b"sans-nul").decode()}
        S: 501 5.5.2 Reponse PLAIN mal formee / Malformed PLAIN response
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: {user}
        S: 334 UGFzc3dvcmQ6
        C: {secret}
        S: 235 2.7.0 Authentification reussie / Authentication succeeded
        """,  # noqa: E501
    )


async def test_auth_plain_with_a_challenge_and_login_with_initial_response(
    server: SmtpServer,
) -> None:
    client = await server.client("submissions")
    await client.command("EHLO client.test")
    await transcript(
        client,
        f"""
        C: AUTH PLAIN
        S: 334<SP>
        C: {sasl_plain(LOGIN, server.password)}
        S: 235 2.7.0 *
        """,
    )
    client = await server.client("submissions")
    await client.command("EHLO client.test")
    await transcript(
        client,
        f"""
        C: AUTH LOGIN {base64.b64encode(LOGIN.encode()).decode()}
        S: 334 UGFzc3dvcmQ6
        C: {base64.b64encode(server.password.encode()).decode()}
        S: 235 2.7.0 *
        """,
    )


async def test_lockout_answers_454_with_the_delay(server: SmtpServer) -> None:
    client = await server.client("submissions")
    await client.command("EHLO client.test")
    for _ in range(5):
        reply = await client.code(f"AUTH PLAIN {sasl_plain(LOGIN, 'faux')}")
        assert reply.startswith("535 5.7.8")
    reply = await client.code(f"AUTH PLAIN {sasl_plain(LOGIN, server.password)}")
    assert reply.startswith("454 4.7.0 Trop de tentatives de connexion infructueuses")
    assert "Reessayez dans" in reply and "Try again in" in reply


async def test_submission_policy_and_delivery(server: SmtpServer) -> None:
    client = await server.submitter("submissions")
    body = f"From: Dr Martin <{LOGIN}>\r\nTo: {OTHER}\r\nSubject: Avis\r\n\r\nMerci.\r\n"
    await transcript(
        client,
        f"""
        C: MAIL FROM:<{OTHER}>
        S: 553 5.7.1 Le compte dr@cabinet.test n'a pas le droit d'envoyer en tant que confrere@cabinet.test : utilisez votre propre adresse ou une boite qui vous est deleguee avec envoi. / *
        C: MAIL FROM:<>
        S: 553 5.7.1 L'expediteur vide (<>) est reserve aux avis de non-remise du serveur. / *
        C: MAIL FROM:<{LOGIN}>
        S: 250 2.1.0 *
        C: RCPT TO:<absent@cabinet.test>
        S: 550 5.1.1 Destinataire inconnu : absent@cabinet.test *
        C: RCPT TO:<{OTHER}>
        S: 250 2.1.5 *
        C: DATA
        S: 354 *
        """,  # noqa: E501
    )
    assert await client.command(body.encode() + b".\r\n") == [
        "250 2.0.0 Message accepte / Message accepted"
    ]
    [stored] = await stored_messages(server.app)
    assert without_trace(stored) == body.encode()
    received = " ".join(BytesHeaderParser().parsebytes(stored)["Received"].split())
    assert "with ESMTPSA id" in received and "using TLSv1.3" in received
    assert LOGIN not in received  # the login never goes into the trace
    # A From header naming someone else is refused at the end of DATA.
    forged = f"From: {OTHER}\r\nSubject: x\r\n\r\nx\r\n".encode()
    reply = await client.send_message(LOGIN, [OTHER], forged)
    assert reply.startswith("553 5.7.1 Le compte dr@cabinet.test n'a pas le droit")
    assert await message_count(server.app) == 1


async def test_session_end_is_logged_without_secrets(
    server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="caducee.protocols.smtp")
    client = await server.submitter("submissions")
    body = f"From: {LOGIN}\r\nSubject: secret-sujet\r\n\r\ncontenu-secret\r\n".encode()
    assert (await client.send_message(LOGIN, [OTHER], body)).startswith("250")
    await client.command("QUIT")
    await asyncio.sleep(0.1)
    [line] = [r.getMessage() for r in caplog.records if "smtp session end" in r.getMessage()]
    assert "listener=submissions ip=127.0.0.1 tls=TLSv1.3/" in line
    assert "authenticated=yes messages=1 errors=0" in line
    assert "codes=220:1,221:1,235:1,250:4,354:1 end=quit" in line
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (
        server.password,
        "secret-sujet",
        "contenu-secret",
        sasl_plain(LOGIN, server.password),
    ):
        assert secret not in logged


class ExplodingHandler(MxHandler):
    async def on_data(self, session: SessionInfo, envelope: Envelope, raw: bytes) -> None:
        raise RuntimeError("disk on fire")


async def test_unexpected_errors_become_451_with_a_logged_reference(
    server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="caducee.protocols.smtp")
    listener = SmtpListener(
        server.app,
        "smtp",
        ListenAddress("127.0.0.1", 0),
        limits=limits_for_tests(),
        handler=ExplodingHandler(server.app),
    )
    await listener.start()
    try:
        client = await SmtpClient.connect(port_of(listener))
        server.clients.append(client)
        await client.reply()
        await client.command("EHLO client.test")
        reply = await client.send_message("a@ailleurs.test", [LOGIN], mail("contenu-prive"))
        assert reply.startswith(
            "451 4.3.0 Erreur temporaire du serveur, reessayez plus tard (ref. "
        )
        reference = reply.split("(ref. ")[1].split(")")[0]
        assert await client.command("NOOP") == ["250 2.0.0 Ok / Ok"]  # the session goes on
        [record] = [r for r in caplog.records if "smtp internal error" in r.getMessage()]
        assert f"ref={reference} phase=data error=RuntimeError" in record.getMessage()
        assert record.exc_info is not None  # the traceback, for the administrator
        assert all("contenu-prive" not in r.getMessage() for r in caplog.records)
        assert await message_count(server.app) == 0
    finally:
        await listener.stop(1)
