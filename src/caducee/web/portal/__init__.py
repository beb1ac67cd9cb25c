"""The patient portal (issue #7): secure pickup of a message left by a practice — landing
and code (:mod:`.entry`), the message, attachments and reply (:mod:`.reading`), shared checks
(:mod:`.common`). No login of the practice's users here: a link, then a code or passphrase."""

from caducee.web.portal.reading import routes

__all__ = ["routes"]
