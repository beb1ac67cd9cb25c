"""A message about one patient of the registry (issue 18), for the webmail and the REST API.

The sender names the patient; the message then carries the patient's qualified INS
(``X-MSS-INS``) and goes only to the trust space (:func:`caducee.health.xdm_mail
.check_recipients`). Optionally its attachments travel as an ``IHE_XDM.ZIP`` (with the MSSanté
subject and ``X-MSS-CODECDA``), and the patient's Mon espace santé address
(``<INS>@patient.mssante.fr``) is added to the recipients. The message is then built and sent
by :mod:`caducee.flows.compose` like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from caducee.app import App
from caducee.flows.compose import Attachment, Outgoing
from caducee.health import xdm_mail
from caducee.services import mailboxes


@dataclass(frozen=True)
class AboutPatient:
    patient_id: int
    xdm_kind: str = ""  # a key of domain.xdm_codes.DOCUMENT_KINDS; "": no XDM package
    to_mes: bool = False  # also to the patient's Mon espace santé address


async def about_patient(
    app: App, access: mailboxes.Access, outgoing: Outgoing, about: AboutPatient
) -> Outgoing:
    """``outgoing`` as a message about ``about.patient_id`` (see the module's docstring)."""
    patient = await xdm_mail.qualified_patient(app, access, about.patient_id)
    to = outgoing.to
    if about.to_mes:
        to = tuple(dict.fromkeys((*to, xdm_mail.mes_address(patient))))
    outgoing = replace(outgoing, to=to)
    await xdm_mail.check_recipients(app, access, outgoing.recipients)
    if not about.xdm_kind:
        return replace(outgoing, mss_headers=xdm_mail.patient_headers(app, patient))
    parts = await xdm_mail.build_parts(
        app,
        access,
        patient,
        about.xdm_kind,
        [(a.filename, a.data) for a in outgoing.attachments],
        title=outgoing.subject,
    )
    return replace(
        outgoing,
        subject=parts.subject,
        attachments=(
            *outgoing.attachments,
            Attachment(xdm_mail.ATTACHMENT_NAME, "application/zip", parts.attachment),
        ),
        mss_headers=parts.headers,
    )
