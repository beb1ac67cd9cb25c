"""OpenID Connect against a configured issuer (Pro Santé Connect in production).

- Web login (OpenID Connect Core 1.0 §3.1, authorization code flow with PKCE, RFC 7636): the
  browser is sent to the issuer; on return, the code is exchanged, the ID token is verified
  (signature against the issuer's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``), and the national
  identifier read from the userinfo endpoint (or the ID token) is mapped to the account holding
  that RPPS number. The ID token's ``acr`` (§2) must be one of the configured ``acr_values``
  (Pro Santé Connect: ``eidas1``, a CPS card or e-CPS) for the login to count as a strong,
  two-factor one; below it (or without it) the login proves only a first factor.
- Access tokens for SASL OAUTHBEARER (RFC 7628) and XOAUTH2 on IMAP and SMTP: a JWT signed by
  the issuer, with our audience, not expired, whose identifier maps to the account.

Only asymmetric signatures are accepted (RS256/RS384/RS512/PS256/ES256/ES384); ``none`` and HMAC
never. Discovery and JWKS documents are cached; an unknown key id triggers one JWKS refresh.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import jwt

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import AccessDenied, ConfigurationError, TemporaryFailure
from caducee.services.audit import record
from caducee.services.lockout import Outcome, auth_event, normalize_login, normalize_source
from caducee.store import directory_repo

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
#: Seconds of clock difference tolerated on exp/nbf/iat.
LEEWAY = 60
#: How long discovery and JWKS documents are reused.
CACHE_SECONDS = 3600.0
#: Largest document accepted from the issuer.
MAX_DOCUMENT = 1024 * 1024
HTTP_TIMEOUT = 15.0


@dataclass(frozen=True)
class PscLogin:
    """The outcome of a web login through the issuer."""

    account: Account
    #: The ID token's ``acr`` is one the configuration requires: the issuer checked two factors.
    strong: bool
    acr: str


def acr_satisfied(acr: object, required: str) -> bool:
    """OpenID Connect Core §2 / §3.1.2.1: ``acr_values`` lists, space-separated, the classes we
    ask for; the login is strong only if the ID token's ``acr`` is one of them. Nothing required
    (empty setting) means nothing is proven: never strong."""
    return isinstance(acr, str) and acr in required.split()


def refused(fr: str = "", en: str = "") -> AccessDenied:
    return AccessDenied(
        fr or "Authentification Pro Santé Connect refusée.",
        en or "Pro Santé Connect authentication refused.",
    )


@dataclass
class _Cache:
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_at: float = float("-inf")
    jwks: dict[str, Any] = field(default_factory=dict)
    jwks_at: float = float("-inf")


def _http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(
            f"Adresse OpenID Connect invalide : {url}", f"Invalid OpenID Connect URL: {url}"
        )
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            body = response.read(MAX_DOCUMENT + 1)
    except urllib.error.HTTPError as exc:
        raise refused(
            f"Le fournisseur d'identité a répondu {exc.code}.",
            f"The identity provider answered {exc.code}.",
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise TemporaryFailure(
            f"Fournisseur d'identité injoignable ({type(exc).__name__}).",
            f"Identity provider unreachable ({type(exc).__name__}).",
        ) from None
    if len(body) > MAX_DOCUMENT:
        raise refused("Réponse du fournisseur d'identité trop grande.", "Provider answer too big.")
    try:
        return json.loads(body)
    except ValueError:
        raise refused(
            "Réponse illisible du fournisseur d'identité.", "Unreadable identity provider answer."
        ) from None


class OidcProvider:
    """The configured issuer: discovery, keys, code exchange, token checks."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.cache = _Cache()

    @property
    def configured(self) -> bool:
        settings = self.app.settings
        return bool(settings.oidc_issuer and settings.oidc_client_id)

    async def metadata(self) -> dict[str, Any]:
        if time.monotonic() - self.cache.metadata_at < CACHE_SECONDS:
            return self.cache.metadata
        issuer = self.app.settings.oidc_issuer.rstrip("/")
        document = await asyncio.to_thread(_http, f"{issuer}/.well-known/openid-configuration")
        if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer:
            raise refused(
                "Document de découverte OpenID Connect incohérent (issuer).",
                "Inconsistent OpenID Connect discovery document (issuer).",
            )
        self.cache.metadata, self.cache.metadata_at = document, time.monotonic()
        return document

    async def _jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        if not refresh and time.monotonic() - self.cache.jwks_at < CACHE_SECONDS:
            return self.cache.jwks
        uri = str((await self.metadata()).get("jwks_uri", ""))
        document = await asyncio.to_thread(_http, uri)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise refused("Clés du fournisseur d'identité illisibles.", "Unreadable provider keys.")
        self.cache.jwks, self.cache.jwks_at = document, time.monotonic()
        return document

    async def _key(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise refused("Jeton illisible.", "Unreadable token.") from None
        if header.get("alg") not in ALGORITHMS:
            raise refused("Algorithme de signature refusé.", "Signature algorithm refused.")
        kid = header.get("kid")
        for refresh in (False, True):
            for jwk in (await self._jwks(refresh=refresh))["keys"]:
                if isinstance(jwk, dict) and (kid is None or jwk.get("kid") == kid):
                    try:
                        return jwt.PyJWK(jwk).key
                    except jwt.PyJWTError:
                        continue
        raise refused("Clé de signature inconnue.", "Unknown signing key.")

    async def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """The claims of a JWT signed by the issuer for ``audience``; AccessDenied otherwise."""
        key = await self._key(token)
        issuer = str((await self.metadata())["issuer"])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise refused("Jeton expiré.", "Token expired.") from None
        except jwt.PyJWTError as exc:
            raise refused(
                f"Jeton refusé ({type(exc).__name__}).", f"Token refused ({type(exc).__name__})."
            ) from None
        return claims

    # ----- web login ---------------------------------------------------------------------

    async def authorization_url(self, secret: str, redirect_uri: str) -> str:
        metadata = await self.metadata()
        settings = self.app.settings
        query = {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": settings.oidc_scopes,
            "state": derive(secret, "state"),
            "nonce": derive(secret, "nonce"),
            "code_challenge": pkce_challenge(derive(secret, "pkce")),
            "code_challenge_method": "S256",
        }
        if settings.oidc_acr_values:
            query["acr_values"] = settings.oidc_acr_values
        endpoint = str(metadata["authorization_endpoint"])
        return f"{endpoint}?{urllib.parse.urlencode(query)}"

    async def finish_login(
        self, secret: str, state: str, code: str, redirect_uri: str, source: str
    ) -> PscLogin:
        """Check ``state``, exchange ``code``, verify the ID token; the account it names and
        whether its ``acr`` reaches the configured level (see :func:`acr_satisfied`)."""
        if not secret or not hmac.compare_digest(derive(secret, "state"), state):
            raise refused(
                "Retour de connexion inattendu (état invalide) : recommencez.",
                "Unexpected login return (invalid state): start again.",
            )
        metadata = await self.metadata()
        settings = self.app.settings
        basic = base64.b64encode(
            f"{urllib.parse.quote(settings.oidc_client_id)}:"
            f"{urllib.parse.quote(settings.oidc_client_secret)}".encode()
        ).decode()
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": derive(secret, "pkce"),
            }
        ).encode()
        answer = await asyncio.to_thread(
            _http,
            str(metadata["token_endpoint"]),
            data=form,
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("id_token"), str):
            raise refused("Réponse de jeton sans id_token.", "Token answer without id_token.")
        claims = await self.verify(answer["id_token"], audience=settings.oidc_client_id)
        if not hmac.compare_digest(str(claims.get("nonce", "")), derive(secret, "nonce")):
            raise refused("Jeton d'identité rejoué (nonce).", "Replayed ID token (nonce).")
        identifier = claims.get(settings.oidc_identifier_claim)
        access_token = answer.get("access_token")
        if identifier is None and isinstance(access_token, str) and "userinfo_endpoint" in metadata:
            info = await asyncio.to_thread(
                _http,
                str(metadata["userinfo_endpoint"]),
                headers={"Authorization": f"Bearer {access_token}"},
            )
            if isinstance(info, dict) and info.get("sub") == claims.get("sub"):
                identifier = info.get(settings.oidc_identifier_claim)
        account = await account_for_identifier(self.app, identifier)
        acr = claims.get("acr")
        strong = acr_satisfied(acr, settings.oidc_acr_values)
        if not strong:
            log.info("oidc login below the required authentication level: second factor asked")
        return PscLogin(account, strong, acr if isinstance(acr, str) else "")

    async def account_for_access_token(self, token: str) -> Account:
        """SASL OAUTHBEARER / XOAUTH2: the account an access token of the issuer names."""
        settings = self.app.settings
        claims = await self.verify(
            token, audience=settings.oidc_audience or settings.oidc_client_id
        )
        return await account_for_identifier(self.app, claims.get(settings.oidc_identifier_claim))


def provider(app: App) -> OidcProvider:
    return app.component(OidcProvider, OidcProvider)


def derive(secret: str, purpose: str) -> str:
    """A value bound to the browser's login cookie: state, nonce or PKCE verifier."""
    digest = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2 S256."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_login_secret() -> str:
    return secrets.token_urlsafe(32)


def rpps_of(identifier: object) -> str | None:
    """The RPPS number in a national identifier: ``8`` + 11 digits (idNat) or 11 digits."""
    if not isinstance(identifier, str):
        return None
    value = identifier.strip()
    if len(value) == 12 and value.startswith("8") and value.isdigit():
        return value[1:]
    if len(value) == 11 and value.isdigit():
        return value
    return None


async def account_for_identifier(app: App, identifier: object) -> Account:
    rpps = rpps_of(identifier)
    if rpps is None:
        raise refused(
            "Le fournisseur d'identité n'a pas transmis de numéro RPPS.",
            "The identity provider sent no RPPS number.",
        )
    async with app.db.read() as conn:
        account = await directory_repo.account_by_rpps(conn, rpps)
    if account is None or account.disabled:
        log.info("oidc login for an unknown or disabled RPPS")
        raise refused(
            "Aucun compte actif de Caducée ne correspond à votre identifiant national (RPPS) : "
            "demandez à l'administrateur du cabinet de le renseigner sur votre compte.",
            "No active Caducée account matches your national identifier (RPPS): ask the "
            "practice's administrator to set it on your account.",
        )
    return account


async def authenticate_bearer(
    app: App, user: str, token: str, service: str, source: str
) -> Account:
    """SASL OAUTHBEARER / XOAUTH2 for a mail client: the token must be valid and name the
    account ``user`` designates (its login; "" takes the token's account). Audited like the
    other mail logins (``auth.mail`` with ``method: oauth``), never with the token."""
    source = normalize_source(source)
    try:
        account = await provider(app).account_for_access_token(token)
    except AccessDenied:
        await record(
            app.db,
            auth_event(
                normalize_login(user) if user else "?",
                "auth.mail",
                source,
                Outcome.FAILED,
                "bad_token",
                service=service,
                method="oauth",
            ),
        )
        raise
    if user and normalize_login(user) != account.login:
        await record(
            app.db,
            auth_event(
                normalize_login(user),
                "auth.mail",
                source,
                Outcome.DENIED,
                "other_account",
                service=service,
                method="oauth",
            ),
        )
        raise refused(
            "Ce jeton appartient à un autre compte.", "This token belongs to another account."
        )
    await record(
        app.db,
        auth_event(account.login, "auth.mail", source, Outcome.OK, service=service, method="oauth"),
    )
    return account
