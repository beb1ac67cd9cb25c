"""Admin console: the audit log of the practice, with filters and CSV export.

Only records about the admin's own practice are shown: its settings (``practice:<id>``),
records whose actor or target is an address in one of its domains, and records about one of its
mailboxes by id (``mailbox:<id>``: the patient portal's ``pickup.*`` events — codes sent or
failed, locks —, which docs/patients.md promises the practice). The scope is
``store.web_repo``'s, the same for the page and its CSV export.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.services import audit_viewer
from caducee.services.audit import AuditRecord
from caducee.store.web_repo import AuditFilter
from caducee.web.core import WebUser, client_ip, download_response, page, render, state
from caducee.web.templating import PARIS

PAGE_SIZE = 100
RESULTS = ("ok", "denied", "failed")
CSV_FIELDS = ("seq", "ts", "actor", "action", "target", "source", "result", "details", "hash")


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def parse_filter(request: Request) -> tuple[AuditFilter, dict[str, str]]:
    """The filter of the query string (days are Europe/Paris days) and the values to show."""
    params = request.query_params
    since_day = _day(params.get("du", ""))
    until_day = _day(params.get("au", ""))
    result = params.get("resultat", "")
    values = {
        "du": since_day.isoformat() if since_day else "",
        "au": until_day.isoformat() if until_day else "",
        "acteur": params.get("acteur", "").strip()[:320],
        "action": params.get("action", "").strip()[:64],
        "resultat": result if result in RESULTS else "",
    }
    flt = AuditFilter(
        since=(datetime.combine(since_day, time(), PARIS).astimezone(UTC) if since_day else None),
        until=(
            datetime.combine(until_day + timedelta(days=1), time(), PARIS).astimezone(UTC)
            if until_day
            else None
        ),
        actor=values["acteur"].lower(),
        action=values["action"],
        result=values["resultat"],
    )
    return flt, values


@page(admin=True)
async def audit_page(request: Request, user: WebUser) -> Response:
    web = state(request)
    flt, values = parse_filter(request)
    before_text = request.query_params.get("avant", "")
    before = int(before_text) if before_text.isdigit() else None
    records = await audit_viewer.practice_audit(
        web.app, user.practice, flt, limit=PAGE_SIZE + 1, before_seq=before
    )
    more = len(records) > PAGE_SIZE
    records = records[:PAGE_SIZE]
    query = urlencode({k: v for k, v in values.items() if v})
    return render(
        request,
        "admin/audit.html",
        {
            "records": records,
            "values": values,
            "results": RESULTS,
            "next_before": records[-1].seq if more and records else None,
            "query": query,
            "admin_tab": "journal",
        },
    )


def _cell(value: str | int) -> str | int:
    """Neutralise spreadsheet formulas (a cell starting with = + - @ is shown as text)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="seconds")


def to_csv(records: list[AuditRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for rec in records:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    rec.seq,
                    _iso(rec.ts),
                    rec.actor,
                    rec.action,
                    rec.target,
                    rec.source,
                    rec.result,
                    rec.details,
                    rec.hash,
                )
            ]
        )
    return out.getvalue()


@page(admin=True)
async def audit_csv(request: Request, user: WebUser) -> Response:
    web = state(request)
    flt, _values = parse_filter(request)
    records = await audit_viewer.practice_audit(web.app, user.practice, flt, limit=None)
    records.reverse()  # oldest first, like ``caducee audit export``
    await audit_viewer.audit_export_recorded(
        web.app, user.account.login, user.practice, len(records), source=client_ip(request)
    )
    stamp = datetime.now(PARIS).strftime("%Y%m%d-%H%M")
    return download_response(
        "\ufeff" + to_csv(records),  # BOM: spreadsheets then read UTF-8 correctly
        f"journal-caducee-{stamp}.csv",
        "text/csv; charset=utf-8",
    )


routes = [
    Route("/admin/journal", audit_page, methods=["GET"], name="admin_audit"),
    Route("/admin/journal.csv", audit_csv, methods=["GET"], name="admin_audit_csv"),
]
