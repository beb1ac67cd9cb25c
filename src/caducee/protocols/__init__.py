"""Protocol adapters: they parse, authenticate and call services (SMTP, IMAP, POP3)."""
