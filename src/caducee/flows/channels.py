"""Which channel a recipient falls in, shown at a glance when writing (and the seam where the
trust-space and patient-channel rules apply):

- ``interne``: a mailbox of ours;
- ``confiance``: a domain of the MSSanté trust space;
- ``patient``: an address of the practice's patient registry (or its older patient book);
- ``professionnel``: an address of the practice's professional book, outside the trust space;
- ``externe``: anything else — ordinary email, « non sécurisé »."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.errors import InvalidInput
from caducee.health import patients, trust_list
from caducee.services import address_books
from caducee.services.local_domains import our_domains

CHANNELS = ("interne", "confiance", "patient", "professionnel", "externe")


async def classify(app: App, practice_id: int, address: str) -> str:
    try:
        clean = normalize_address(address)
    except InvalidInput:
        return "invalide"
    domain = domain_of(clean)
    if domain in await our_domains(app):
        return "interne"
    book = await address_books.book_of(app, practice_id, clean)
    if book == "patient" or await patients.find_by_email(app, practice_id, clean) is not None:
        return "patient"
    if await trust_list.is_listed(app, domain):
        return "confiance"
    if book == "pro":
        return "professionnel"
    return "externe"
