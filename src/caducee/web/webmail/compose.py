"""Writing mail: new message, reply, reply-all, forward, with attachments. The message is written
and sent by :mod:`caducee.flows.compose` (the REST API's too): ``flows.submission.submit`` —
the same pipeline, checks and audit as SMTP submission —, then a copy in the Sent folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import getaddresses

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.domain import mail_display
from caducee.domain.addresses import normalize_address
from caducee.domain.model import SpecialUse
from caducee.errors import CaduceeError, InvalidInput
from caducee.flows import compose, patient_compose, submission
from caducee.flows.compose import MAX_SUBJECT, Outgoing
from caducee.health import annuaire, dlp, xdm_mail
from caducee.services import mailstore, webmail
from caducee.services.envelope import ClientInfo
from caducee.web.core import WebUser, client_ip, error_message, page, redirect, render, state
from caducee.web.i18n import gettext as _
from caducee.web.webmail.common import BoxView, base_path, open_view


@dataclass
class Draft:
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: str = ""
    forward: str = ""  # "folder_id:uid" whose attachments go along
    reply_to_ref: str = ""  # "folder_id:uid" to mark \\Answered once sent
    receipt: bool = False  # ask for a read receipt (RFC 8098 Disposition-Notification-To)
    close_exchange: bool = False  # MSSanté X-MSS-MES: FIN (end an exchange with a patient)
    draft_uid: int | None = None  # the saved copy in Drafts, replaced at each save
    about_patient: str = ""  # registry id of the patient the message is about (issue 18)
    xdm_kind: str = ""  # send the attachments as an IHE XDM package of this document type
    to_mes: bool = False  # also to the patient's Mon espace santé address
    forwarded_files: list[str] = field(default_factory=list)


#: Recipients of a pre-filled compose page looked up in the national directory at most.
MAX_LOOKUPS = 20


def _split(value: str) -> list[str]:
    return [a for _n, a in getaddresses([value]) if a]


def _ref(value: str) -> tuple[int, int] | None:
    folder, _, uid = value.partition(":")
    if folder.isdigit() and uid.isdigit():
        return int(folder), int(uid)
    return None


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines())


def _prefix(subject: str, prefix: str) -> str:
    return subject if subject.lower().startswith(prefix.lower()) else f"{prefix} {subject}"


async def _prefill(request: Request, view: BoxView) -> Draft:
    params = request.query_params
    app = state(request).app
    for mode in ("repondre", "repondre-tous", "transferer"):
        ref = _ref(params.get(mode, ""))
        if ref is None:
            continue
        of = await webmail.open_folder(app, view.access, ref[0])
        _row, raw = await webmail.message(app, of, ref[1])
        shown = mail_display.display(raw)
        parsed = mail_display.parse(raw)
        intro = _("Le %(date)s, %(sender)s a écrit :") % {
            "date": shown.date,
            "sender": shown.sender,
        }
        if mode == "transferer":
            header = "\n".join(
                [
                    _("-------- Message transféré --------"),
                    f"{_('Objet')} : {shown.subject}",
                    f"{_('De')} : {shown.sender}",
                    f"{_('Date')} : {shown.date}",
                    f"{_('À')} : {', '.join(shown.to)}",
                ]
            )
            return Draft(
                subject=_prefix(shown.subject, "Tr :"),
                body=f"\n\n{header}\n\n{shown.text}",
                forward=params["transferer"],
                forwarded_files=[a.filename for a in shown.attachments],
            )
        reply_to = str(parsed.get("Reply-To") or "") or str(parsed.get("From") or "")
        to = _split(reply_to)
        cc: list[str] = []
        if mode == "repondre-tous":
            own = view.mailbox.address
            others = _split(", ".join(shown.to + shown.cc))
            cc = [a for a in others if a.lower() != own and a.lower() not in map(str.lower, to)]
        references = " ".join([*shown.references, shown.message_id]).strip()
        return Draft(
            to=", ".join(to),
            cc=", ".join(cc),
            subject=_prefix(shown.subject, "Re :"),
            body=f"\n\n{intro}\n{_quote(shown.text)}",
            in_reply_to=shown.message_id,
            references=references,
            reply_to_ref=params[mode],
        )
    saved = params.get("brouillon", "")
    if saved.isdigit():
        drafts = await webmail.special_folder(app, view.access, SpecialUse.DRAFTS)
        _row, raw = await webmail.message(app, drafts, int(saved))
        shown = mail_display.display(raw)
        parsed = mail_display.parse(raw)
        return Draft(
            to=", ".join(shown.to),
            cc=", ".join(shown.cc),
            bcc=", ".join(_split(str(parsed.get("Bcc") or ""))),
            subject=shown.subject,
            body=shown.text.rstrip("\n"),
            in_reply_to=str(parsed.get("In-Reply-To") or ""),
            references=str(parsed.get("References") or ""),
            draft_uid=int(saved),
        )
    return Draft(to=params.get("a", "")[:1000])


async def _form(
    request: Request,
    view: BoxView,
    draft: Draft,
    *,
    error: str = "",
    status: int = 200,
    findings: list[dlp.Finding] | None = None,
) -> Response:
    app = state(request).app
    # Recipients the national directory lists: who they are (profession, structure).
    listed = []
    for address in _split(", ".join((draft.to, draft.cc, draft.bcc)))[:MAX_LOOKUPS]:
        found = await annuaire.lookup(app, address)
        if found is not None:
            listed.append(found)
    return render(
        request,
        "webmail/compose.html",
        {
            "directory": await annuaire.status(app) is not None,
            "listed": listed,
            "nav_active": "courrier",
            "view": view,
            "base": base_path(view),
            "draft": draft,
            "error": error,
            "findings": findings or [],
            "max_bytes": app.settings.max_message_bytes,
            "about_patients": await xdm_mail.patient_choices(app, view.access),
            "xdm_kinds": xdm_mail.kinds(),
        },
        status=status,
    )


@page()
async def compose_page(request: Request, user: WebUser) -> Response:
    view = await open_view(request, user, need_send=True)
    return await _form(request, view, await _prefill(request, view))


def _addresses(value: str, label: str) -> list[str]:
    found = []
    for address in _split(value):
        try:
            found.append(normalize_address(address))
        except InvalidInput:
            raise InvalidInput(
                f"{label} : adresse invalide « {address[:100]} ».",
                f"{label}: invalid address '{address[:100]}'.",
            ) from None
    return found


async def _outgoing(
    request: Request, view: BoxView, draft: Draft, files: list[UploadFile]
) -> Outgoing:
    """The form as an :class:`Outgoing`: addresses checked, uploads read within the limits,
    the forwarded message's attachments taken along."""
    app = state(request).app
    limit = app.settings.max_message_bytes
    attachments: list[compose.Attachment] = []
    compose.check_attachments(len(files), 0, limit)
    total = 0
    for upload in files:
        data = await upload.read(limit + 1)
        total += len(data)
        compose.check_attachments(len(files), total, limit)
        attachments.append(
            compose.Attachment(
                upload.filename or "", upload.content_type or "application/octet-stream", data
            )
        )
    forward = _ref(draft.forward)
    if forward is not None:
        attachments += await compose.forwarded(app, view.access, compose.Original(*forward))
    return Outgoing(
        to=tuple(_addresses(draft.to, "À")),
        cc=tuple(_addresses(draft.cc, "Cc")),
        bcc=tuple(_addresses(draft.bcc, "Cci")),
        subject=draft.subject,
        text=draft.body,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
        receipt=draft.receipt,
        close_exchange=draft.close_exchange,
        attachments=tuple(attachments),
    )


@page()
async def send(request: Request, user: WebUser) -> Response:
    web = state(request)
    view = await open_view(request, user, need_send=True)
    form = await request.form(max_files=64, max_part_size=web.app.settings.max_message_bytes)
    text = {k: v for k, v in form.items() if isinstance(v, str)}
    files = [f for f in form.getlist("pieces") if isinstance(f, UploadFile) and f.filename]
    draft = _draft_from(text)
    try:
        outgoing = await _outgoing(request, view, draft, files)
        if draft.about_patient.isdigit():
            about = patient_compose.AboutPatient(
                int(draft.about_patient), draft.xdm_kind, draft.to_mes
            )
            outgoing = await patient_compose.about_patient(web.app, view.access, outgoing, about)
        composed = await compose.build(web.app, view.access, outgoing)
        if text.get("confirmer") != "oui":  # shown before it leaves: the sender may edit
            found = await submission.sensitive_findings(
                web.app, view.mailbox.address, list(composed.recipients), composed.raw
            )
            if found:
                return await _form(request, view, draft, findings=found, status=409)
        sent = await compose.send(
            web.app,
            view.access,
            composed,
            ClientInfo(
                ip=client_ip(request), helo="webmail", login=user.account.login, protocol="HTTPS"
            ),
        )
    except CaduceeError as exc:
        return await _form(request, view, draft, error=error_message(exc), status=400)
    await _drop_draft(request, view, draft.draft_uid)
    assert sent is not None
    return await _after_send(request, view, draft, sent.folder)


def _draft_from(text: dict[str, str]) -> Draft:
    uid = text.get("brouillon", "")
    return Draft(
        to=text.get("a", "")[:5000],
        cc=text.get("cc", "")[:5000],
        bcc=text.get("cci", "")[:5000],
        subject=text.get("objet", "")[:MAX_SUBJECT],
        body=text.get("corps", "")[:1_000_000],
        in_reply_to=text.get("en_reponse_a", ""),
        references=text.get("references", ""),
        forward=text.get("transfert", ""),
        reply_to_ref=text.get("reponse_a", ""),
        receipt=text.get("accuse") == "oui",
        close_exchange=text.get("fin_echange") == "oui",
        draft_uid=int(uid) if uid.isdigit() else None,
        about_patient=text.get("patient", "")[:20],
        xdm_kind=text.get("type_xdm", "")[:40],
        to_mes=text.get("mes") == "oui",
    )


async def _drop_draft(request: Request, view: BoxView, uid: int | None) -> None:
    await compose.drop_draft(state(request).app, view.access, uid)


async def _after_send(
    request: Request, view: BoxView, draft: Draft, sent: mailstore.OpenFolder
) -> Response:
    web = state(request)
    answered = _ref(draft.reply_to_ref)
    if answered is not None:
        await compose.mark_answered(web.app, view.access, compose.Original(*answered))
    return redirect(f"{base_path(view)}/d/{sent.folder.id}", flash="sent")


def _draft_outgoing(draft: Draft) -> Outgoing:
    """The draft as written; uploads are not kept in a webmail draft, they go with the message
    when it is sent."""
    return Outgoing(
        to=tuple(_split(draft.to)),
        cc=tuple(_split(draft.cc)),
        bcc=tuple(_split(draft.bcc)),
        subject=draft.subject,
        text=draft.body,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
    )


@page()
async def save_draft(request: Request, user: WebUser) -> Response:
    """Auto-save (JSON for the page's script) or the « Enregistrer » button (redirect)."""
    web = state(request)
    view = await open_view(request, user)
    form = await request.form(max_files=64, max_part_size=web.app.settings.max_message_bytes)
    draft = _draft_from({k: v for k, v in form.items() if isinstance(v, str)})
    saved = await compose.save_draft(
        web.app, view.access, _draft_outgoing(draft), replaces=draft.draft_uid
    )
    uid = saved.uid
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"brouillon": uid})
    return redirect(f"{base_path(view)}/ecrire?brouillon={uid}", flash="draft_saved")


routes = [
    Route("/courrier/b/{mailbox_id}/ecrire", compose_page, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/brouillon", save_draft, methods=["POST"]),
    Route("/courrier/b/{mailbox_id}/envoyer", send, methods=["POST"]),
]
