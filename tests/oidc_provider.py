"""A small OpenID provider for tests, standing in for Pro Santé Connect: a real HTTP server on
loopback with discovery, JWKS, an authorization endpoint that approves the user it is told to
(the CPS card step), a token endpoint (client_secret_basic, PKCE S256) and userinfo. Tokens are
real RS256 JWTs signed with a key made for the test."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "caducee-test"
CLIENT_SECRET = "secret-de-test-oidc"
AUDIENCE = "caducee-mail"


@dataclass
class _Grant:
    identifier: str
    nonce: str
    redirect_uri: str
    challenge: str


@dataclass
class TestProvider:
    __test__ = False

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = "cle-1"
    #: The national identifier (idNat) the next authorization approves.
    identifier: str = ""
    #: The authentication class its next ID tokens certify (``acr``, OpenID Connect Core §2):
    #: ``eidas1`` for a CPS card or e-CPS; None leaves the claim out.
    acr: str | None = "eidas1"
    grants: dict[str, _Grant] = field(default_factory=dict)
    access: dict[str, str] = field(default_factory=dict)  # opaque userinfo token → identifier
    port: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sign(self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None) -> str:
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def access_token(
        self,
        identifier: str,
        *,
        audience: str = AUDIENCE,
        lifetime: int = 300,
        issuer: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer or self.issuer,
            "sub": f"psc-{identifier}",
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "SubjectNameID": identifier,
        }
        return self.sign(claims, key=key)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    # ----- HTTP -------------------------------------------------------------------------------

    def start(self) -> TestProvider:
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    self._authorize(query)
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    identifier = provider.access.get(token)
                    if identifier is None:
                        self._json(401, {"error": "invalid_token"})
                    else:
                        self._json(200, {"sub": f"psc-{identifier}", "SubjectNameID": identifier})
                else:
                    self._json(404, {"error": "not_found"})

            def _authorize(self, query: dict[str, str]) -> None:
                if (
                    query.get("client_id") != CLIENT_ID
                    or query.get("code_challenge_method") != "S256"
                ):
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                provider.grants[code] = _Grant(
                    provider.identifier,
                    query.get("nonce", ""),
                    query.get("redirect_uri", ""),
                    query.get("code_challenge", ""),
                )
                target = (
                    query["redirect_uri"]
                    + "?"
                    + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                )
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

            def do_POST(self) -> None:
                if self.path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._json(401, {"error": "invalid_client"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                grant = provider.grants.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    grant is None
                    or grant.redirect_uri != form.get("redirect_uri")
                    or grant.challenge != challenge
                ):
                    self._json(400, {"error": "invalid_grant"})
                    return
                now = int(time.time())
                claims: dict[str, Any] = {
                    "iss": provider.issuer,
                    "sub": f"psc-{grant.identifier}",
                    "aud": CLIENT_ID,
                    "iat": now,
                    "exp": now + 300,
                    "nonce": grant.nonce,
                }
                if provider.acr is not None:
                    claims["acr"] = provider.acr
                id_token = provider.sign(claims)
                opaque = secrets.token_urlsafe(16)
                provider.access[opaque] = grant.identifier
                self._json(
                    200, {"access_token": opaque, "token_type": "Bearer", "id_token": id_token}
                )

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }
