"""WebAuthn ceremonies (security keys, passkeys) with py_webauthn.

The relying party id is the node's hostname (``settings.hostname``); the expected origin is
``https://<hostname>`` with the port the browser used. Challenges (random, 256 bits) are kept
with the server-side session and used once. Only public keys are stored.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import InvalidInput
from caducee.services import webauthn_keys
from caducee.store.web_repo import CredentialRow

RP_NAME = "Caducée"
CHALLENGE_BYTES = 32
CHALLENGE_LIFETIME = timedelta(minutes=5)
MAX_CREDENTIAL_JSON = 64 * 1024


def expected_origin(hostname: str, host_header: str) -> str:
    """``https://hostname[:port]``: the port is the one the browser used, the name ours."""
    name, _sep, port = host_header.rpartition(":")
    if not _sep or not port.isdigit() or name.strip("[]").lower() != hostname.lower():
        port = ""
    return f"https://{hostname}" + (f":{port}" if port and port != "443" else "")


def _transports(row: CredentialRow) -> list[AuthenticatorTransport]:
    known = {t.value: t for t in AuthenticatorTransport}
    return [known[t] for t in row.transports if t in known]


def _descriptor(row: CredentialRow) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(row.credential_id), transports=_transports(row) or None
    )


def _challenge_state(purpose: str, challenge: bytes, now: datetime) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "challenge": bytes_to_base64url(challenge),
        "expires": (now + CHALLENGE_LIFETIME).isoformat(),
    }


def take_challenge(pending: dict[str, Any] | None, purpose: str, now: datetime) -> bytes | None:
    """The challenge kept for ``purpose`` if it is still valid."""
    if not pending or pending.get("purpose") != purpose:
        return None
    try:
        expires = datetime.fromisoformat(str(pending["expires"]))
        challenge = base64url_to_bytes(str(pending["challenge"]))
    except (KeyError, ValueError):
        return None
    return challenge if now < expires else None


def registration_options(
    hostname: str, account: Account, existing: list[CredentialRow], now: datetime
) -> tuple[str, dict[str, Any]]:
    """The options for ``navigator.credentials.create`` (JSON) and the state to keep."""
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    options = generate_registration_options(
        rp_id=hostname,
        rp_name=RP_NAME,
        user_id=f"caducee-account-{account.id}".encode("ascii"),
        user_name=account.login,
        user_display_name=account.display_name or account.login,
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(row) for row in existing],
    )
    return options_to_json(options), _challenge_state("register", challenge, now)


@dataclass(frozen=True)
class NewCredential:
    credential_id: str
    public_key: bytes
    sign_count: int
    transports: list[str]


def _parse(credential: Any) -> dict[str, Any]:
    if isinstance(credential, str):
        if len(credential) > MAX_CREDENTIAL_JSON:
            raise ValueError("too large")
        credential = json.loads(credential)
    if not isinstance(credential, dict):
        raise ValueError("not an object")
    return credential


def verify_registration(
    credential: Any, challenge: bytes, hostname: str, origin: str
) -> NewCredential:
    invalid = InvalidInput(
        "La clé de sécurité n'a pas pu être enregistrée (réponse invalide). Réessayez.",
        "The security key could not be registered (invalid response). Try again.",
    )
    try:
        data = _parse(credential)
        verified = verify_registration_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=hostname,
            expected_origin=origin,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        raise invalid from None
    response = data.get("response", {})
    transports = response.get("transports", []) if isinstance(response, dict) else []
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[str(t) for t in transports if isinstance(t, str)],
    )


def authentication_options(
    hostname: str, credentials: list[CredentialRow], now: datetime
) -> tuple[str, dict[str, Any]]:
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    options = generate_authentication_options(
        rp_id=hostname,
        challenge=challenge,
        allow_credentials=[_descriptor(row) for row in credentials],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), _challenge_state("login", challenge, now)


async def verify_login(
    app: App,
    account: Account,
    credential: Any,
    challenge: bytes | None,
    origin: str,
    *,
    source: str,
    now: datetime,
) -> Account:
    """Check an assertion for ``account`` and record the outcome (lockout, audit)."""
    row: CredentialRow | None = None
    new_count: int | None = None
    reason = ""
    try:
        data = _parse(credential)
        raw_id = str(data.get("rawId") or data.get("id") or "")
        row = await webauthn_keys.webauthn_credential(app, raw_id) if raw_id else None
        if challenge is None:
            reason = "no_challenge"
        elif row is None or row.account_id != account.id:
            reason = "unknown_key"
        else:
            verified = verify_authentication_response(
                credential=data,
                expected_challenge=challenge,
                expected_rp_id=app.settings.hostname,
                expected_origin=origin,
                credential_public_key=row.public_key,
                credential_current_sign_count=row.sign_count,
            )
            new_count = verified.new_sign_count
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        reason = "bad_assertion"
        new_count = None
    return await webauthn_keys.finish_webauthn_login(
        app,
        account.login,
        source,
        credential=row if new_count is not None else None,
        new_sign_count=new_count,
        reason=reason,
        now=now,
    )
