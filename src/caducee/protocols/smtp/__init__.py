"""The SMTP server: our own engine on asyncio streams (see docs/architecture.md, "Own SMTP
engine").

- :mod:`.parser` — command line grammar (paths, ESMTP parameters, xtext);
- :mod:`.replies` — reply codes with RFC 3463 enhanced status codes, US-ASCII texts;
- :mod:`.stream` — buffered input/output (pipelining-aware flushing);
- :mod:`.data` — the DATA stream and the content checks before storing;
- :mod:`.session` — the state machine (no policy);
- :mod:`.handler` — policy hooks: ``MxHandler`` (port 25), ``SubmissionHandler`` (587, 465);
- :mod:`.sasl` — AUTH mechanisms (PLAIN, LOGIN) behind a registry;
- :mod:`.errors` — service errors → replies;
- :mod:`.limits` — sizes, timeouts and counts;
- :mod:`.listener` — the ``smtp``, ``submission`` and ``submissions`` doors.
"""
