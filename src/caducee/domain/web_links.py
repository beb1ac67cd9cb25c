"""The web pages that mail and refusals written by the server link to, named by what they are
for: the health rules say which page fixes what (a patient's record, registering a patient,
confirming an address, a pickup, the charter of a pickup's practice), the web layer declares
its routes from the same paths, so that no rule hard-codes a route and a route cannot move
without its links.

Paths use Starlette's syntax (``{patient_id:int}``); :func:`url` fills them in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from urllib.parse import quote, urlencode


class Page(Enum):
    PATIENT_RECORD = "/patients/{patient_id:int}"
    NEW_PATIENT = "/patients/nouveau"
    ADDRESS_VERIFICATION = "/patient/verifier/{token}"
    PICKUP = "/portail/{token}"
    PICKUP_CHARTER = "/portail/{token}/charte"

    @property
    def path(self) -> str:
        """The route's path, for the web layer's declaration."""
        return self.value


_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def url(base: str, page: Page, query: Mapping[str, str] | None = None, **params: object) -> str:
    """The absolute URL of ``page`` under ``base`` (the node's public base URL)."""
    path = _PARAM.sub(lambda m: quote(str(params[m.group(1)]), safe=""), page.value)
    if query:
        path += "?" + urlencode(query, quote_via=quote)
    return f"{base}{path}"
