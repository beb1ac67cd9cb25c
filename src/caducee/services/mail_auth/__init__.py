"""Mail authentication: SPF, DKIM and DMARC for mail arriving on the MX, DKIM for mail leaving.

One module per RFC, as a reader looks for them:

* :mod:`.spf` — SPF (RFC 7208), ``check_host()`` of the MAIL FROM or HELO identity;
* :mod:`.dkim` — DKIM (RFC 6376, RFC 8301): verifying signatures, signing outgoing mail;
* :mod:`.dmarc` — DMARC (RFC 7489): organisational domain (Public Suffix List), alignment,
  policy discovery and evaluation;
* :mod:`.authres` — Authentication-Results (RFC 8601): the verdict, its header field, the
  removal of forged ones, the refusal of a spoof of our own domains;
* :mod:`.evaluate` — :func:`evaluate_inbound`, the MX's checks of one message, all three;
* :mod:`.headers` — the header section as they all read it.

The names callers use are re-exported here.
"""

from caducee.services.mail_auth.authres import (
    AuthVerdict,
    spoof_error,
    spoof_reason,
    stamped,
    strip_own_results,
)
from caducee.services.mail_auth.dkim import (
    MAX_DKIM_SIGNATURES,
    SIGNED_HEADERS,
    DkimResult,
    check_dkim,
    dkim_sign,
    dkim_sign_async,
)
from caducee.services.mail_auth.dmarc import (
    DmarcResult,
    aligned,
    check_dmarc,
    dmarc_reject_error,
    from_header_domains,
    organizational_domain,
)
from caducee.services.mail_auth.evaluate import evaluate_inbound
from caducee.services.mail_auth.spf import SpfResult, check_spf

__all__ = [
    "MAX_DKIM_SIGNATURES",
    "SIGNED_HEADERS",
    "AuthVerdict",
    "DkimResult",
    "DmarcResult",
    "SpfResult",
    "aligned",
    "check_dkim",
    "check_dmarc",
    "check_spf",
    "dkim_sign",
    "dkim_sign_async",
    "dmarc_reject_error",
    "evaluate_inbound",
    "from_header_domains",
    "organizational_domain",
    "spoof_error",
    "spoof_reason",
    "stamped",
    "strip_own_results",
]
