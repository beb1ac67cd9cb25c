"""Mail clients configure themselves: Thunderbird's autoconfig, Outlook's autodiscover, Apple's
configuration profile.

* ``GET /.well-known/autoconfig/mail/config-v1.1.xml`` and ``GET /mail/config-v1.1.xml`` (the
  latter is what Thunderbird asks ``autoconfig.<domain>`` for), ``?emailaddress=…``: the
  « clientConfig » 1.1 format of Mozilla's autoconfig
  (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
* ``POST /autodiscover/autodiscover.xml``: Outlook's « POX » autodiscover (MS-OXDSCLI §2.2.3:
  request schema ``…/outlook/requestschema/2006``, response schema
  ``…/outlook/responseschema/2006a``). The request is parsed by defusedxml: no DTD, no entity,
  no external reference.
* ``GET /compte/applications/apple.mobileconfig``: an Apple configuration profile
  (``com.apple.mail.managed`` payload) for the logged-in account, its address and no password.

What they announce comes from :mod:`caducee.services.client_setup` (the listeners in force, on
the node's hostname). Choice, for the address asked about: any address of one of our domains
gets the same document (the login is the address the client typed: ``%EMAILADDRESS%``, or the
address echoed back), so nothing tells whether a mailbox exists; a domain we do not serve, or
no valid address, gets 404 on every route, whatever the local part.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from caducee.services.client_setup import (
    ClientServer,
    ClientSetup,
    Protocol,
    Security,
    client_setup,
)
from caducee.web.core import WebUser, page, state

#: Largest autodiscover request read (a real one is well under 1 KiB).
MAX_REQUEST_BYTES = 16 * 1024
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILECONFIG_TYPE = "application/x-apple-aspen-config"
XML_TYPE = "application/xml; charset=utf-8"
_PREFIXES = ("autoconfig.", "autodiscover.")
_DISPLAY_NAME = "Caducée"


def _not_found() -> Response:
    return PlainTextResponse("Introuvable. / Not found.", status_code=404)


def _host_domain(request: Request) -> str:
    """The domain the client asked on: the Host without its port and ``autoconfig.`` prefix."""
    host = request.headers.get("host", "").lower()
    if host.startswith("["):  # an IPv6 literal names no mail domain
        return ""
    host = host.partition(":")[0]
    for prefix in _PREFIXES:
        if host.startswith(prefix):
            return host[len(prefix) :]
    return host


def _xml(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def thunderbird_config(setup: ClientSetup) -> bytes:
    """The clientConfig 1.1 document: every door, in order of preference."""
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider")
    provider.set("id", setup.domain)
    _sub(provider, "domain", setup.domain)
    _sub(provider, "displayName", f"{_DISPLAY_NAME} ({setup.domain})")
    _sub(provider, "displayShortName", _DISPLAY_NAME)
    for server in setup.servers:
        tag = "outgoingServer" if server.protocol is Protocol.SMTP else "incomingServer"
        element = _sub(provider, tag)
        element.set("type", server.protocol.value)
        _sub(element, "hostname", setup.hostname)
        _sub(element, "port", str(server.port))
        _sub(element, "socketType", server.security.value)
        _sub(element, "authentication", "password-cleartext")  # inside TLS only
        _sub(element, "username", "%EMAILADDRESS%")
    return _xml(root)


async def thunderbird(request: Request) -> Response:
    address = request.query_params.get("emailaddress", "") or _host_domain(request)
    setup = await client_setup(state(request).app, address)
    if setup is None:
        return _not_found()
    return Response(
        thunderbird_config(setup), media_type=XML_TYPE, headers={"Cache-Control": "no-cache"}
    )


def _first(setup: ClientSetup, protocol: Protocol) -> ClientServer | None:
    servers = setup.of(protocol)
    return servers[0] if servers else None


def outlook_response(setup: ClientSetup, address: str) -> bytes:
    """The POX response: the preferred door of each protocol (Outlook reads one per type)."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = _sub(root, "Response")
    response.set("xmlns", OUTLOOK_NS)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for protocol, kind in (
        (Protocol.IMAP, "IMAP"),
        (Protocol.POP3, "POP3"),
        (Protocol.SMTP, "SMTP"),
    ):
        server = _first(setup, protocol)
        if server is None:
            continue
        element = _sub(account, "Protocol")
        _sub(element, "Type", kind)
        _sub(element, "Server", setup.hostname)
        _sub(element, "Port", str(server.port))
        _sub(element, "DomainRequired", "off")
        _sub(element, "LoginName", address)
        _sub(element, "SPA", "off")
        _sub(element, "SSL", "on")
        _sub(element, "Encryption", "SSL" if server.security is Security.TLS else "TLS")
        _sub(element, "AuthRequired", "on")
    return _xml(root)


def requested_address(body: bytes) -> str | None:
    """``Autodiscover/Request/EMailAddress`` of a POX request, or ``None`` if it is not one."""
    try:
        root = SafeET.fromstring(body)
    except Exception:  # malformed XML, or defusedxml's DTDForbidden, EntitiesForbidden, ...
        return None
    found = root.find(f"{{{REQUEST_NS}}}Request/{{{REQUEST_NS}}}EMailAddress")
    if found is None:  # some clients omit the namespace
        found = root.find("Request/EMailAddress")
    text = (found.text or "").strip() if found is not None else ""
    return text if "@" in text else None


async def outlook(request: Request) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return PlainTextResponse("Requête trop grande. / Request too large.", 413)
    address = requested_address(body)
    if address is None:
        return PlainTextResponse(
            "Requête autodiscover invalide. / Invalid autodiscover request.", status_code=400
        )
    setup = await client_setup(state(request).app, address)
    if setup is None:
        return _not_found()
    return Response(outlook_response(setup, address), media_type=XML_TYPE)


def _reverse(hostname: str) -> str:
    return ".".join(reversed(hostname.split(".")))


def apple_profile(setup: ClientSetup, address: str) -> bytes:
    """A ``com.apple.mail.managed`` profile: IMAP (else POP3) in, submission out, no password
    (the device asks for an app password when the profile is installed)."""
    incoming = _first(setup, Protocol.IMAP) or _first(setup, Protocol.POP3)
    outgoing = _first(setup, Protocol.SMTP)
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, f"{address}.{setup.hostname}")
    mail: dict[str, object] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(setup.hostname)}.caducee.mail.{ident}",
        "PayloadUUID": str(uuid.uuid5(ident, "mail")).upper(),
        "PayloadDisplayName": f"{_DISPLAY_NAME} — {address}",
        "EmailAccountDescription": f"{_DISPLAY_NAME} — {address}",
        "EmailAccountType": "EmailTypePOP"
        if incoming and incoming.protocol is Protocol.POP3
        else "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": setup.hostname,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": setup.hostname,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    if incoming is not None:
        mail["IncomingMailServerPortNumber"] = incoming.port
        mail["IncomingMailServerUseSSL"] = True
    if outgoing is not None:
        mail["OutgoingMailServerPortNumber"] = outgoing.port
        mail["OutgoingMailServerUseSSL"] = True
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(setup.hostname)}.caducee.{ident}",
        "PayloadUUID": str(ident).upper(),
        "PayloadDisplayName": f"{_DISPLAY_NAME} — {address}",
        "PayloadDescription": "Messagerie sécurisée de santé : mot de passe d'application "
        "demandé à l'installation. / Secure health mail: app password asked at installation.",
        "PayloadOrganization": _DISPLAY_NAME,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [mail],
    }
    return plistlib.dumps(profile)


@page()
async def mobileconfig(request: Request, user: WebUser) -> Response:
    address = user.account.login
    setup = await client_setup(state(request).app, address)
    if setup is None:  # a login outside our domains: nothing to configure
        return _not_found()
    return Response(
        apple_profile(setup, address),
        media_type=MOBILECONFIG_TYPE,
        headers={
            "Content-Disposition": 'attachment; filename="caducee.mobileconfig"',
            "Cache-Control": "no-store",
        },
    )


routes = [
    Route(
        "/.well-known/autoconfig/mail/config-v1.1.xml",
        thunderbird,
        methods=["GET"],
        name="autoconfig_well_known",
    ),
    Route("/mail/config-v1.1.xml", thunderbird, methods=["GET"], name="autoconfig"),
    Route("/autodiscover/autodiscover.xml", outlook, methods=["POST"], name="autodiscover"),
    Route("/Autodiscover/Autodiscover.xml", outlook, methods=["POST"], name="autodiscover_caps"),
    Route(
        "/compte/applications/apple.mobileconfig",
        mobileconfig,
        methods=["GET"],
        name="app_mobileconfig",
    ),
]
