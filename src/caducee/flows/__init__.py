"""Flows: what orchestrates the rules for a message — submission (every door's sending
pipeline), inbound delivery (the MX), the outbound worker, maintenance, read receipts and the
recipient channels shown when writing. A layer above ``services`` and ``health``: flows import
them, never the reverse; the doors (``protocols``, ``web``) and ``server``/``cli`` call flows."""
