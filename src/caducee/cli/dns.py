"""``caducee dns``: the DNS records to publish for each mail domain, as zone-file lines.

Per domain: MX, SPF, DKIM key, DMARC policy, client service discovery (SRV, RFC 6186 and
RFC 8314 §5.1) and autoconfiguration names; once: a reminder of the server's addresses.

Choices:

* SPF ``v=spf1 mx -all``: Caducée sends from the host(s) its MX names, nothing else may.
* DMARC ``p=quarantine; adkim=s; aspf=s``: Caducée signs with ``d=`` the exact domain and uses
  it in MAIL FROM, so strict alignment costs nothing and keeps subdomains from passing for the
  domain; ``quarantine`` rather than ``reject`` at first, because a legitimate message lost
  on a misconfiguration is worse in health care than one filed as spam: move to ``p=reject``
  once the aggregate reports (``rua``, to postmaster@, RFC 5321 §4.5.1) show no failures.
"""

from __future__ import annotations

from typing import Annotated

import typer

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, err_console, fail, with_app
from caducee.config import Settings
from caducee.domain.addresses import normalize_domain
from caducee.errors import CaduceeError, NotFound
from caducee.i18n import tr
from caducee.services.client_setup import listener_port
from caducee.services.dkim_keys import DkimKey, ensure_dkim_key, load_dkim_key
from caducee.services.practices import list_practices

TTL = 3600

#: RFC 6186 §3.1-3.3 and RFC 8314 §5.1 service names, by listener, in order of preference.
SRV_SERVICES: tuple[tuple[str, str], ...] = (
    ("_submissions._tcp", "submissions"),
    ("_submission._tcp", "submission"),
    ("_imaps._tcp", "imaps"),
    ("_imap._tcp", "imap"),
    ("_pop3s._tcp", "pop3s"),
    ("_pop3._tcp", "pop3"),
)


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def _line(name: str, rdtype: str, value: str) -> str:
    return f"{_fqdn(name)}\t{TTL}\tIN\t{rdtype}\t{value}"


def _txt(strings: list[str]) -> str:
    return " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings)


def dmarc_record(domain: str) -> str:
    return f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}; adkim=s; aspf=s"


def server_records(settings: Settings) -> list[str]:
    """The reminder for the server's own name (addresses and reverse DNS)."""
    host = settings.hostname
    return [
        tr(
            f"; ===== Serveur {host} =====",
            f"; ===== Server {host} =====",
        ),
        tr(
            "; Adresses du serveur : remplacez par ses adresses publiques et décommentez. "
            "Le SPF « mx » des domaines en dépend ; le DNS inverse (PTR) de chaque adresse "
            f"doit donner {host}.",
            "; Server addresses: replace with its public addresses and uncomment. The domains' "
            f"'mx' SPF depends on them; each address's reverse DNS (PTR) must give {host}.",
        ),
        "; " + _line(host, "A", tr("<adresse IPv4 publique>", "<public IPv4 address>")),
        "; " + _line(host, "AAAA", tr("<adresse IPv6 publique>", "<public IPv6 address>")),
    ]


def domain_records(settings: Settings, domain: str, key: DkimKey, practice: str = "") -> list[str]:
    """Zone-file lines, with a comment per block, for one mail domain."""
    host = settings.hostname
    title = f"{domain} ({practice})" if practice else domain
    lines = [
        f"; ===== {title} =====",
        tr(
            f"; MX : le courrier pour {domain} est remis à {host}.",
            f"; MX: mail for {domain} is delivered to {host}.",
        ),
        _line(domain, "MX", f"10 {_fqdn(host)}"),
        tr(
            "; SPF (RFC 7208) : seuls les serveurs MX du domaine envoient en son nom ; les "
            "autres sont refusés (-all).",
            "; SPF (RFC 7208): only the domain's MX hosts send on its behalf; others are "
            "refused (-all).",
        ),
        _line(domain, "TXT", _txt(["v=spf1 mx -all"])),
        tr(
            f"; DKIM (RFC 6376) : clé publique du sélecteur « {key.selector} » (clé privée : "
            f"{key.path}).",
            f"; DKIM (RFC 6376): public key of selector '{key.selector}' (private key: "
            f"{key.path}).",
        ),
        _line(key.dns_name, "TXT", _txt(key.dns_txt_strings())),
        tr(
            "; DMARC (RFC 7489) : alignement strict (Caducée signe et envoie avec ce domaine "
            "exact) ; quarantaine des messages non authentifiés plutôt que rejet, le temps de "
            f"vérifier les rapports envoyés à postmaster@{domain} (boîte ou alias à créer), "
            "puis passez à p=reject.",
            "; DMARC (RFC 7489): strict alignment (Caducée signs and sends with this exact "
            "domain); unauthenticated mail quarantined rather than rejected while you check "
            f"the reports sent to postmaster@{domain} (create that mailbox or alias), then "
            "move to p=reject.",
        ),
        _line(f"_dmarc.{domain}", "TXT", _txt([dmarc_record(domain)])),
        tr(
            "; Découverte des serveurs par les logiciels de messagerie (RFC 6186, RFC 8314 "
            "§5.1) ; « 0 0 0 . » : service non proposé.",
            "; Server discovery for mail clients (RFC 6186, RFC 8314 §5.1); '0 0 0 .': "
            "service not offered.",
        ),
    ]
    loopback = False
    for service, listener in SRV_SERVICES:
        port = listener_port(settings, listener)
        if port is None:
            lines.append(_line(f"{service}.{domain}", "SRV", "0 0 0 ."))
            continue
        loopback = loopback or port[1]
        lines.append(_line(f"{service}.{domain}", "SRV", f"0 1 {port[0]} {_fqdn(host)}"))
    if loopback:
        lines.append(
            tr(
                "; Attention : ces services n'écoutent que sur la boucle locale (installation "
                "de développement) ; configurez [listeners] avant de publier.",
                "; Warning: these services listen on loopback only (development "
                "installation); configure [listeners] before publishing.",
            )
        )
    lines += [
        tr(
            "; Configuration automatique des comptes (Thunderbird : autoconfig ; "
            "Outlook : autodiscover) : ces noms désignent ce serveur, qui y répond en HTTPS ; "
            "son certificat TLS doit les couvrir aussi.",
            "; Account autoconfiguration (Thunderbird: autoconfig; Outlook: autodiscover): "
            "these names point at this server, which answers them over HTTPS; its TLS "
            "certificate must cover them too.",
        ),
        _line(f"autoconfig.{domain}", "CNAME", _fqdn(host)),
        _line(f"autodiscover.{domain}", "CNAME", _fqdn(host)),
    ]
    return lines


def dns_command(
    data: DataOption = DEFAULT_DATA,
    domain: Annotated[
        str | None,
        typer.Option("--domain", help="Un seul domaine (défaut : tous) / one domain only."),
    ] = None,
) -> None:
    """Affiche les enregistrements DNS à publier (MX, SPF, DKIM, DMARC, SRV). / Print the DNS
    records to publish."""
    wanted: str | None = None
    if domain:
        try:
            wanted = normalize_domain(domain)
        except CaduceeError as error:
            raise fail(error) from None

    async def action(app: App) -> tuple[Settings, list[tuple[str, str]]]:
        found = [
            (name, practice.name)
            for practice in await list_practices(app)
            for name in practice.domains
            if wanted is None or name == wanted
        ]
        if wanted is not None and not found:
            raise NotFound(
                f"Le domaine {wanted} n'est pas servi par cette installation "
                "(voir « caducee practice list »).",
                f"Domain {wanted} is not served by this installation "
                "(see 'caducee practice list').",
            )
        return app.settings, found

    settings, domains = with_app(data, action)
    lines = server_records(settings)
    for name, practice in domains:
        try:
            created = load_dkim_key(settings, name) is None
            key = ensure_dkim_key(settings, name)
        except CaduceeError as error:
            raise fail(error) from None
        if created:
            err_console.print(
                tr(
                    f"Clé DKIM créée pour {name} : {key.path}",
                    f"DKIM key created for {name}: {key.path}",
                ),
                markup=False,
            )
        lines += ["", *domain_records(settings, name, key, practice)]
    typer.echo("\n".join(lines))
