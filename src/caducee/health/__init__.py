"""Health rules: the MSSanté trust space (whitelist, mutual TLS policy), later the patient
channel, DLP, charter and télétransmission."""
