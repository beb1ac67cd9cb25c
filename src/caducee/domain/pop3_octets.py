"""A message as POP3 sends it, and its size (RFC 1939).

RFC 1939 §3: a multi-line response is lines ended by CRLF, and §5 (STAT, LIST): sizes are the
"exact size" of each message, which §11 counts with CRLF line ends. A message is stored byte
for byte as it arrived (an IMAP APPEND may carry bare LFs or lack a final CRLF), so RETR sends
its lines with CRLF ends — a bare LF becomes CRLF, a missing final line end is added — and LIST
must announce exactly that many octets (byte-stuffing of lines starting with "." is transport,
removed by the client: not counted, RFC 1939 §3).

:func:`pop3_lines` is what RETR sends; :func:`pop3_size` counts it without building it (it is
computed at delivery for every message, so it must be cheap).
"""

from __future__ import annotations


def pop3_lines(raw: bytes) -> list[bytes]:
    """The lines of ``raw`` as POP3 sends them, without their CRLF: split at CRLF and at bare
    LF (a bare CR stays inside its line); a final line end adds no empty line."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def pop3_size(raw: bytes) -> int:
    """The octets of :func:`pop3_lines` each followed by CRLF: ``len(raw)``, plus one per bare
    LF (it becomes CRLF), plus 2 when ``raw`` does not end with a line end."""
    if not raw:
        return 0
    bare_lf = raw.count(b"\n") - raw.count(b"\r\n")
    return len(raw) + bare_lf + (0 if raw.endswith(b"\n") else 2)
