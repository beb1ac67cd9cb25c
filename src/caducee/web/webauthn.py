"""WebAuthn ceremonies (security keys, passkeys) with py_webauthn.

The relying party id is the node's hostname (``settings.hostname``); the expected origin is
``https://<hostname>`` with the port the browser used. Challenges (random, 256 bits) are kept
with the server-side session and used once. Only public keys are stored.

py_webauthn (about 6 MB with its parsers) is imported by the first ceremony, not by every
worker process at start.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

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


def _b64url(data: bytes) -> str:
    """RFC 4648 §5 without padding, as WebAuthn writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _transports(row: CredentialRow) -> list[AuthenticatorTransport]:
    from webauthn.helpers.structs import AuthenticatorTransport

    known = {t.value: t for t in AuthenticatorTransport}
    return [known[t] for t in row.transports if t in known]


def _descriptor(row: CredentialRow) -> PublicKeyCredentialDescriptor:
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

    return PublicKeyCredentialDescriptor(
        id=_unb64url(row.credential_id), transports=_transports(row) or None
    )


def _challenge_state(purpose: str, challenge: bytes, now: datetime) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "challenge": _b64url(challenge),
        "expires": (now + CHALLENGE_LIFETIME).isoformat(),
    }


def take_challenge(pending: dict[str, Any] | None, purpose: str, now: datetime) -> bytes | None:
    """The challenge kept for ``purpose`` if it is still valid."""
    if not pending or pending.get("purpose") != purpose:
        return None
    try:
        expires = datetime.fromisoformat(str(pending["expires"]))
        challenge = _unb64url(str(pending["challenge"]))
    except (KeyError, ValueError):
        return None
    return challenge if now < expires else None


def registration_options(
    hostname: str, account: Account, existing: list[CredentialRow], now: datetime
) -> tuple[str, dict[str, Any]]:
    """The options for ``navigator.credentials.create`` (JSON) and the state to keep."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

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
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import InvalidRegistrationResponse

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
        credential_id=_b64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[str(t) for t in transports if isinstance(t, str)],
    )


def authentication_options(
    hostname: str, credentials: list[CredentialRow], now: datetime
) -> tuple[str, dict[str, Any]]:
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

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
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import InvalidAuthenticationResponse

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
