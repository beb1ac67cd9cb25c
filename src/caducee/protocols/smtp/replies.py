"""SMTP replies: code, RFC 3463 enhanced status code, text (RFC 5321 §4.2).

Every reply carries an enhanced status code (RFC 2034 §3) except the greeting, the EHLO/HELO
answer and the 3xx intermediate replies (354 to DATA, 334 SASL challenges). Reply text is
US-ASCII (RFC 5321 §4.2): texts for people are French first, then English, with accents
transliterated ("Destinataire inconnu : ... / Unknown recipient: ...").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

#: RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets, CRLF included.
REPLY_LINE_MAX = 512
_TEXT_MAX = REPLY_LINE_MAX - 2 - len("550-5.7.1 ")

_PUNCTUATION = str.maketrans(
    {
        "«": '"',
        "»": '"',
        "’": "'",
        "‘": "'",
        "“": '"',
        "”": '"',
        "—": "-",
        "–": "-",
        "…": "...",
        "\u00a0": " ",
        "\u202f": " ",
        "œ": "oe",
        "Œ": "OE",
        "æ": "ae",
        "Æ": "AE",
    }
)


def ascii_text(text: str) -> str:
    """``text`` as printable US-ASCII: accents stripped, other characters as '?', no controls."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PUNCTUATION))
    out = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        if char in "\r\n\t":
            out.append(" ")
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append("?")
    return "".join(out).strip()


@dataclass(frozen=True)
class Reply:
    """One SMTP reply; ``lines`` holds the text of each line (several for a multiline reply)."""

    code: int
    enhanced: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @property
    def closes(self) -> bool:
        """421 (and 221) end the session (RFC 5321 §3.8)."""
        return self.code in (221, 421)

    def render(self) -> bytes:
        """The reply on the wire: ``code-`` continuation lines, then ``code SP`` (§4.2.1)."""
        prefix = f"{self.enhanced} " if self.enhanced else ""
        lines = self.lines or ("",)
        out = []
        for index, line in enumerate(lines):
            sep = " " if index == len(lines) - 1 else "-"
            out.append(f"{self.code}{sep}{prefix}{line}\r\n")
        return "".join(out).encode("ascii")


def reply(code: int, enhanced: str, *texts: str) -> Reply:
    """A reply whose text is ``texts`` joined by " / " on one line when it fits, else one line
    each (each cut to the 512-octet line limit)."""
    cleaned = [ascii_text(t) for t in texts if t]
    joined = " / ".join(cleaned)
    if len(joined) <= _TEXT_MAX:
        return Reply(code, enhanced, (joined,))
    return Reply(code, enhanced, tuple(t[:_TEXT_MAX] for t in cleaned))


def bilingual(code: int, enhanced: str, fr: str, en: str) -> Reply:
    """French first, English next (the convention of every message shown to people)."""
    return reply(code, enhanced, fr, en)


def multiline(code: int, lines: Sequence[str], enhanced: str = "") -> Reply:
    return Reply(code, enhanced, tuple(ascii_text(line)[:_TEXT_MAX] for line in lines))


# --- fixed replies (RFC 5321 §4.2.2/§4.2.3, RFC 3463 codes) --------------------------------

OK = bilingual(250, "2.0.0", "Ok", "Ok")
SENDER_OK = bilingual(250, "2.1.0", "Expediteur accepte", "Sender OK")
RECIPIENT_OK = bilingual(250, "2.1.5", "Destinataire accepte", "Recipient OK")
MESSAGE_ACCEPTED = bilingual(250, "2.0.0", "Message accepte", "Message accepted")
RESET_OK = bilingual(250, "2.0.0", "Transaction annulee", "Reset OK")
BYE = bilingual(221, "2.0.0", "Au revoir", "Bye")
START_DATA = Reply(
    354, "", ("Envoyez le message, terminez par <CRLF>.<CRLF> / End data with <CRLF>.<CRLF>",)
)
READY_FOR_TLS = bilingual(220, "2.0.0", "Pret pour TLS", "Ready to start TLS")
# RFC 5321 §3.5.3: 252 when VRFY is not used to confirm addresses (no enumeration).
CANNOT_VRFY = bilingual(
    252,
    "2.5.0",
    "Verification impossible, mais le message sera accepte et la remise tentee",
    "Cannot VRFY user, but will accept message and attempt delivery",
)
AUTH_OK = bilingual(235, "2.7.0", "Authentification reussie", "Authentication succeeded")

# 4xx
TOO_MANY_ERRORS = bilingual(
    421, "4.7.0", "Trop d'erreurs, fermeture de la connexion", "Too many errors, closing"
)
TOO_MANY_CONNECTIONS = bilingual(
    421, "4.7.0", "Trop de connexions, reessayez plus tard", "Too many connections, try later"
)
TIMEOUT = bilingual(421, "4.4.2", "Delai d'inactivite depasse", "Idle timeout, closing")
SHUTTING_DOWN = bilingual(
    421, "4.3.2", "Arret du service, reessayez plus tard", "Service shutting down, try later"
)
TOO_MANY_RECIPIENTS = bilingual(
    452, "4.5.3", "Trop de destinataires pour ce message", "Too many recipients"
)

# 5xx: syntax and sequence (RFC 3463 X.5.x)
UNKNOWN_COMMAND = bilingual(500, "5.5.1", "Commande inconnue", "Unknown command")
LINE_TOO_LONG = bilingual(500, "5.5.2", "Ligne trop longue", "Line too long")
BAD_SYNTAX = bilingual(500, "5.5.2", "Erreur de syntaxe", "Syntax error")
NOT_IMPLEMENTED = bilingual(502, "5.5.1", "Commande non disponible", "Command not implemented")
NO_ARGUMENTS = bilingual(
    501, "5.5.4", "Cette commande ne prend pas d'argument", "No argument expected"
)
BAD_ARGUMENT = bilingual(501, "5.5.4", "Argument manquant ou invalide", "Invalid argument")
SEND_HELO_FIRST = bilingual(503, "5.5.1", "Envoyez EHLO d'abord", "Send EHLO first")
NESTED_MAIL = bilingual(503, "5.5.1", "Transaction deja commencee (MAIL)", "Nested MAIL command")
NEED_MAIL = bilingual(503, "5.5.1", "Envoyez MAIL d'abord", "Send MAIL first")
NEED_RCPT = bilingual(503, "5.5.1", "Envoyez RCPT d'abord", "Send RCPT first")
NO_VALID_RECIPIENTS = bilingual(554, "5.5.1", "Aucun destinataire valide", "No valid recipients")
DATA_AFTER_BDAT = bilingual(
    503, "5.5.1", "DATA impossible apres BDAT (RFC 3030)", "DATA not allowed after BDAT (RFC 3030)"
)
TLS_ACTIVE = bilingual(503, "5.5.1", "TLS deja actif", "TLS already active")
TLS_UNAVAILABLE = bilingual(502, "5.5.1", "STARTTLS non disponible", "STARTTLS not available")
PIPELINED_STARTTLS = bilingual(
    554,
    "5.5.1",
    "Donnees envoyees apres STARTTLS avant la negociation TLS",
    "Data pipelined after STARTTLS",
)
MESSAGE_TOO_BIG = bilingual(
    552, "5.3.4", "Message trop volumineux", "Message size exceeds fixed maximum message size"
)
NON_ASCII_ADDRESS = bilingual(
    553,
    "5.6.7",
    "Adresse non ASCII sans le parametre SMTPUTF8",
    "Non-ASCII address requires the SMTPUTF8 parameter",
)

# DATA content (data.py)
BARE_LINE_END = bilingual(
    550,
    "5.6.2",
    "Fin de ligne isolee (LF ou CR sans CRLF) dans le message : utilisez CRLF",
    "Bare LF or CR in message: use CRLF line endings",
)
NUL_BYTE = bilingual(550, "5.6.0", "Octet NUL dans le message", "NUL byte in message")
HEADER_LINE_TOO_LONG = bilingual(
    550,
    "5.6.0",
    "Ligne d'en-tete de plus de 998 octets (RFC 5322)",
    "Header line longer than 998 octets (RFC 5322)",
)
TOO_MANY_HEADERS = bilingual(
    552, "5.3.4", "Trop de champs d'en-tete dans le message", "Too many header fields"
)
EIGHT_BIT_HEADERS = bilingual(
    550,
    "5.6.7",
    "En-tetes non ASCII sans SMTPUTF8 (RFC 6531)",
    "Non-ASCII headers require SMTPUTF8 (RFC 6531)",
)
EMPTY_MESSAGE = bilingual(550, "5.6.0", "Message vide", "Empty message")

# AUTH (RFC 4954 §6)
AUTH_NOT_AVAILABLE = bilingual(
    503, "5.5.1", "AUTH non disponible sur ce port", "AUTH not available here"
)
ALREADY_AUTHENTICATED = bilingual(503, "5.5.1", "Deja authentifie", "Already authenticated")
AUTH_IN_TRANSACTION = bilingual(
    503, "5.5.1", "AUTH interdit pendant une transaction", "AUTH not allowed during a transaction"
)
AUTH_UNKNOWN_MECHANISM = bilingual(
    504, "5.5.4", "Mecanisme d'authentification inconnu", "Unrecognized authentication type"
)
AUTH_CANCELLED = bilingual(
    501, "5.7.0", "Authentification annulee par le client", "Authentication cancelled"
)
AUTH_BAD_BASE64 = bilingual(
    501, "5.5.2", "Reponse base64 illisible", "Cannot Base64-decode client response"
)
AUTH_LINE_TOO_LONG = bilingual(
    500, "5.5.6", "Ligne d'authentification trop longue", "Authentication exchange line too long"
)
AUTH_FAILED = bilingual(
    535,
    "5.7.8",
    "Identifiant ou mot de passe incorrect (utilisez un mot de passe d'application)",
    "Authentication credentials invalid (use an app password)",
)
AUTH_REQUIRED = bilingual(
    530, "5.7.0", "Authentification requise (AUTH)", "Authentication required"
)
STARTTLS_FIRST = bilingual(
    530,
    "5.7.0",
    "Chiffrement requis : envoyez STARTTLS puis AUTH",
    "Must issue a STARTTLS command first, then AUTH",
)
ENCRYPTION_REQUIRED = bilingual(
    538,
    "5.7.11",
    "Chiffrement requis pour s'authentifier : envoyez STARTTLS d'abord",
    "Encryption required for requested authentication mechanism",
)
AUTH_TEMPORARY = bilingual(
    454, "4.7.0", "Echec temporaire de l'authentification", "Temporary authentication failure"
)


def greeting(hostname: str) -> Reply:
    """RFC 5321 §4.3.1: ``220 <domain> ESMTP ...`` (no enhanced code, RFC 2034)."""
    return Reply(220, "", (f"{ascii_text(hostname)} ESMTP Caducee",))


def closing(reply_: Reply, hostname: str) -> Reply:
    """A 421 names the host (RFC 5321 §3.8)."""
    return Reply(reply_.code, reply_.enhanced, (f"{ascii_text(hostname)} {reply_.lines[0]}",))


def chunk_received(size: int) -> Reply:
    """RFC 3030 §2: the reply to a BDAT chunk that is not the last."""
    return bilingual(250, "2.0.0", f"{size} octets recus", f"{size} octets received")
