"""The IMAP4rev1 / IMAP4rev2 server (RFC 3501, RFC 9051) and its extensions.

``parser`` holds the grammar, ``protocol`` the types, ``session`` the states and the selected
folder's view; one module per command family (``auth``, ``mailbox``, ``fetch``, ``store``,
``copy_move``, ``append``, ``search``, ``expunge``, ``idle``, ``quota``); ``listener`` the doors.
"""
