"""``/accueil``: the landing page after the login.

Areas that later issues add (webmail, patient portal, API tokens) register a tile in
:data:`TILES` and their routes in :func:`caducee.web.create_web_app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.services import mfa
from caducee.web.core import N_, WebUser, page, render, state


@dataclass(frozen=True)
class Tile:
    title: str  # French msgid, translated when shown
    text: str
    path: str | None  # None: announced, not available yet
    admin_only: bool = False


TILES: list[Tile] = [
    Tile(
        N_("Messagerie"),
        N_("Lire et envoyer vos messages sécurisés, et ceux des boîtes qui vous sont déléguées."),
        "/courrier",
    ),
    Tile(N_("Mon compte"), N_("Vos informations et votre mot de passe."), "/compte"),
    Tile(
        N_("Sécurité"),
        N_("Validation en deux étapes, clés de sécurité, sessions ouvertes."),
        "/compte/securite",
    ),
    Tile(
        N_("Logiciels de messagerie"),
        N_("Mots de passe d'application pour Thunderbird, Outlook ou votre téléphone."),
        "/compte/applications",
    ),
    Tile(
        N_("Administration"),
        N_("Cabinet, comptes, boîtes aux lettres, délégations et journal d'audit."),
        "/admin",
        admin_only=True,
    ),
]


@page()
async def home(request: Request, user: WebUser) -> Response:
    web = state(request)
    factors = await mfa.second_factors(web.app, user.account.id)
    tiles = [t for t in TILES if user.is_admin or not t.admin_only]
    return render(
        request, "home.html", {"tiles": tiles, "factors": factors, "nav_active": "accueil"}
    )


routes = [Route("/accueil", home, methods=["GET"], name="accueil")]
