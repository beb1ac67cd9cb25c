"""Authentication-Results (RFC 8601): the verdict of SPF, DKIM and DMARC on one inbound message.

:class:`AuthVerdict` renders the header field (§2.2), one resinfo per method: spf, dkim (one
per signature), dmarc. Only we may write fields naming our authserv-id, so earlier ones are
forgeries and :func:`strip_own_results` removes them (§5). The verdict also tells whether a
message is a spoof of one of our own domains (:meth:`AuthVerdict.rejects_local_spoof`), refused
with :func:`spoof_error`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from caducee.errors import PolicyRejected
from caducee.i18n import language
from caducee.services.mail_auth.dkim import DkimResult
from caducee.services.mail_auth.dmarc import DmarcResult, aligned
from caducee.services.mail_auth.headers import header_block
from caducee.services.mail_auth.spf import SpfResult

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+$")  # RFC 2045 token


def _value(text: str) -> str:
    """A pvalue/reason value: a token, or a quoted-string (RFC 8601 §2.2)."""
    if _TOKEN.match(text):
        return text
    clean = re.sub(r"[^\x20-\x7e]", "", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{clean}"'


def _method(method: str, result: str, reason: str, props: list[tuple[str, str]]) -> str:
    parts = [f"{method}={result}"]
    if reason:
        parts.append(f"reason={_value(reason)}")
    parts += [f"{name}={_value(value)}" for name, value in props if value]
    return " ".join(parts)


@dataclass(frozen=True)
class AuthVerdict:
    """What SPF, DKIM and DMARC say about one inbound message."""

    authserv_id: str
    spf: SpfResult
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult
    from_domains: tuple[str, ...] = ()
    mail_from_domain: str = ""  # "" for the null reverse-path

    @property
    def dmarc_policy(self) -> str:
        """What DMARC asks us to do with this message: none, quarantine or reject."""
        return self.dmarc.disposition if self.dmarc.result == "fail" else "none"

    @property
    def temporary_failure(self) -> bool:
        """True when a DNS failure left a check undecided (a 4xx answer may be fairer)."""
        return "temperror" in (
            self.spf.result,
            self.dmarc.result,
            *(r.result for r in self.dkim),
        )

    def results(self) -> list[str]:
        """The resinfo items of the header, in order: spf, dkim (one per signature), dmarc."""
        spf_prop = "smtp.mailfrom" if self.spf.identity == "mailfrom" else "smtp.helo"
        spf_reason = self.spf.reason if self.spf.result in ("temperror", "permerror") else ""
        items = [_method("spf", self.spf.result, spf_reason, [(spf_prop, self.spf.domain)])]
        if not self.dkim:
            items.append("dkim=none")
        for result in self.dkim:
            items.append(
                _method(
                    "dkim",
                    result.result,
                    result.reason,
                    [("header.d", result.domain), ("header.s", result.selector)],
                )
            )
        dmarc = _method(
            "dmarc",
            self.dmarc.result,
            self.dmarc.reason if self.dmarc.result != "fail" else "",
            [],
        )
        if self.dmarc.policy:
            dmarc += f" (p={self.dmarc.policy} dis={self.dmarc_policy})"
        if self.dmarc.from_domain:
            dmarc += f" header.from={_value(self.dmarc.from_domain)}"
        items.append(dmarc)
        return items

    def header(self) -> str:
        """``Authentication-Results: <authserv-id>; spf=…; dkim=…; dmarc=…`` on one line."""
        return "Authentication-Results: " + "; ".join([self.authserv_id, *self.results()])

    def header_line(self) -> bytes:
        """:meth:`header` folded one result per line, CRLF-terminated, ready to prepend."""
        body = ";\r\n\t".join([self.authserv_id, *self.results()])
        return f"Authentication-Results: {body}\r\n".encode("ascii", "replace")

    def _authenticated_for(self, domain: str) -> bool:
        spf_ok = self.spf.result == "pass" and aligned(self.spf.domain, domain, "r")
        dkim_ok = any(r.result == "pass" and aligned(r.domain, domain, "r") for r in self.dkim)
        return spf_ok or dkim_ok

    def rejects_local_spoof(self, our_domains: Collection[str]) -> bool:
        """True when mail from outside claims one of ``our_domains`` (or a subdomain) in From
        or MAIL FROM without proving it: DMARC pass, or an SPF or DKIM pass aligned with
        that domain. Our own users send through authenticated submission, never the MX.

        Check :attr:`temporary_failure` first: when DNS left a result undecided, a temporary
        refusal (451 4.7.0) is fairer than 550 5.7.1 with :func:`spoof_reason`."""
        ours = {d.strip().lower().rstrip(".") for d in our_domains if d.strip()}

        def is_ours(domain: str) -> bool:
            return any(domain == d or domain.endswith("." + d) for d in ours)

        for domain in self.from_domains:
            if not is_ours(domain):
                continue
            dmarc_ok = self.dmarc.result == "pass" and self.dmarc.from_domain == domain
            if not dmarc_ok and not self._authenticated_for(domain):
                return True
        envelope = self.mail_from_domain
        return bool(envelope) and is_ours(envelope) and not self._authenticated_for(envelope)


def spoof_error() -> PolicyRejected:
    """The refusal of a message spoofing one of our domains (SMTP 550 5.7.1)."""
    return PolicyRejected(
        "Message refusé : l'expéditeur utilise un domaine de ce serveur sans être "
        "authentifié (SPF, DKIM et DMARC en échec). Les utilisateurs du cabinet envoient "
        "leurs messages par la soumission authentifiée (ports 587 ou 465).",
        "Message refused: the sender uses a domain of this server without being "
        "authenticated (SPF, DKIM and DMARC failed). The practice's users send their "
        "messages through authenticated submission (ports 587 or 465).",
    )


def spoof_reason(lang: str | None = None) -> str:
    """:func:`spoof_error`'s text in ``lang`` (default: :func:`caducee.i18n.language`)."""
    return spoof_error().message(lang or language())


def stamped(lines: bytes, raw: bytes, authserv_id: str) -> bytes:
    """Header ``lines`` (Received, our Authentication-Results) put before
    :func:`strip_own_results` of ``raw``, in one copy of the message (a worker thread's job for
    a big one: ``cpu_pool.copying``)."""
    return strip_own_results(raw, authserv_id, before=lines)


def strip_own_results(raw: bytes, authserv_id: str, *, before: bytes = b"") -> bytes:
    """``raw`` without Authentication-Results fields claiming to be ours (RFC 8601 §5):
    only we may write them, so earlier ones are forgeries; ``before`` put first."""
    head = header_block(raw)
    lines = head.splitlines(keepends=True)
    kept: list[bytes] = []
    dropping = False
    own = authserv_id.strip().lower().encode()
    for line in lines:
        if line[:1] in (b" ", b"\t") and line.strip():
            if not dropping:
                kept.append(line)
            continue
        dropping = False
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"authentication-results":
            ident = re.split(rb"[\s;(]", value.strip(), maxsplit=1)[0].lower()
            if ident == own:
                dropping = True
                continue
        kept.append(line)
    return b"".join([before, *kept, memoryview(raw)[len(head) :]])
