"""Network clients the flows use to speak to other servers (``smtp``: relaying to a next hop).

A client speaks its protocol and classifies the answers; it holds no rule of ours and reads no
store: it imports only the domain, configuration, errors and TLS layers (import-linter checks
it). The flows give it what to send and decide what its results mean.
"""
