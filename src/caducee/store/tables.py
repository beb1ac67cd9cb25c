"""The schema, as SQLAlchemy Core tables. Migrations in ``store/migrations`` create it.

Clear columns hold only what is not sensitive (ids, flags, sizes, dates, addresses used for
routing). Message metadata (subject, display names, snippet, header fields) lives sealed in
``messages.meta_sealed``, its IMAP envelope and body structure in ``messages.imap_sealed``;
bodies live sealed in blobs; TOTP secrets are sealed too.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


practices = Table(
    "practices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("finess", String(9)),
    Column("siret", String(14)),
    Column("mailbox_limit", Integer, nullable=False),
    _ts("created_at"),
)

practice_domains = Table(
    "practice_domains",
    metadata,
    Column("domain", String(253), primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False, index=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False, index=True),
    Column("login", String(320), nullable=False, unique=True),
    Column("civility", String(20), nullable=False, server_default=""),
    Column("last_name", String(100), nullable=False),
    Column("first_name", String(100), nullable=False, server_default=""),
    Column("profession", String(100), nullable=False, server_default=""),
    Column("rpps", String(11), unique=True),
    Column("adeli", String(9), unique=True),
    Column("role", String(20), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("password_hash", Text, nullable=False),
    Column("totp_sealed", LargeBinary),
    Column("totp_enabled", Boolean, nullable=False, server_default="0"),
    Column("totp_last_step", BigInteger),
    _ts("created_at"),
    _ts("password_changed_at"),
    # Its last use on any door, written at most once an hour (0033).
    _ts("last_used_at", nullable=True),
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False, index=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("type", String(3), nullable=False),
    Column("owner_account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("quota_bytes", BigInteger, nullable=False),
    Column("used_bytes", BigInteger, nullable=False, server_default="0"),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    _ts("created_at"),
    # The last quota threshold (0, 80, 95, 100 %) the owner was told of; lowered again when
    # the usage falls back under it (services/quota_notices.py).
    Column("quota_notified", SmallInteger, nullable=False, server_default="0"),
    # Set when its deletion began: its data key is gone, its rows and blobs are being removed
    # (services/lifecycle.py; 0033).
    _ts("deleted_at", nullable=True),
    # Its last use on any door, written at most once an hour (0033).
    _ts("last_used_at", nullable=True),
)

data_keys = Table(
    "data_keys",
    metadata,
    Column("scope", String(64), primary_key=True),
    Column("master_key_id", String(16), nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=False),
    _ts("created_at"),
    _ts("rewrapped_at", nullable=True),
)

delegations = Table(
    "delegations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("can_send", Boolean, nullable=False),
    Column("granted_by", Integer, ForeignKey("accounts.id")),
    _ts("created_at"),
    UniqueConstraint("mailbox_id", "account_id", name="uq_delegations_mailbox_account"),
)

folders = Table(
    "folders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("special_use", String(20)),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False, server_default="1"),
    Column("highestmodseq", BigInteger, nullable=False, server_default="1"),
    Column("subscribed", Boolean, nullable=False, server_default="1"),
    _ts("created_at"),
    # Its messages do not count in the mailbox's used_bytes (the télétransmission archive,
    # filled by the server only).
    Column("quota_exempt", Boolean, nullable=False, server_default="0"),
    UniqueConstraint("mailbox_id", "name", name="uq_folders_mailbox_name"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("folder_id", Integer, ForeignKey("folders.id"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("flags", Integer, nullable=False, server_default="0"),
    Column("keywords", Text, nullable=False, server_default=""),
    Column("internal_date", DateTime(timezone=True), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("blob_id", String(32), nullable=False, index=True),
    Column("meta_sealed", LargeBinary, nullable=False),
    # the IMAP structure in compact form (``Structure.to_compact``), sealed with field "imap":
    # what a full sync reads; NULL for messages stored before 0039 until re-sealed (issue 17)
    Column("imap_sealed", LargeBinary),
    # the octets POP3 RETR sends (CRLF line ends, a final CRLF; RFC 1939 §5 "exact size"):
    # set at delivery, NULL before migration 0021 until the first POP3 listing computes it
    Column("pop3_size", BigInteger),
    UniqueConstraint("folder_id", "uid", name="uq_messages_folder_uid"),
    Index("ix_messages_folder_modseq", "folder_id", "modseq"),
    Index("ix_messages_folder_date", "folder_id", "internal_date"),  # webmail pages (0011)
)

blobs = Table(
    "blobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

app_passwords = Table(
    "app_passwords",
    metadata,
    Column("id", Integer, primary_key=True),
    # the account it opens; for a mailbox's app password, the mailbox's owner at creation
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    # NULL: an account's own app password (login = the account's login); else the mailbox
    # (TLT, ORG, APP, ...) whose address is the login it opens, and nothing else (0021)
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), index=True),
    Column("label", String(100), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scopes", String(100), nullable=False),
    _ts("created_at"),
    _ts("last_used_at", nullable=True),
    _ts("revoked_at", nullable=True),
    Column("created_by", String(320)),  # the login of who created it (NULL before 0021)
)

auth_failures = Table(
    "auth_failures",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("failures", Integer, nullable=False),
    _ts("last_failure_at"),
    _ts("locked_until", nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    _ts("ts"),
    Column("actor", String(320), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(320), nullable=False, server_default=""),
    Column("source", String(100), nullable=False, server_default=""),
    Column("result", String(20), nullable=False),
    Column("details", Text, nullable=False, server_default="{}"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # 1: SHA-256 chain (records written before migration 0018); 2: HMAC-SHA256 chain
    Column("chain", SmallInteger, nullable=False, server_default="1"),
    Index("ix_audit_log_ts", "ts"),
)

#: One row (id = 1): where the chain starts after retention purges (``seq``, ``hash``), its
#: head — the last record's sequence number and MAC, updated with every append (migration 0018)
#: —, the first record of the keyed chain, and an HMAC over all of these: deleting the last
#: records leaves the head pointing past them, and rewinding the head needs the key.
audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("head_seq", BigInteger),
    Column("head_hash", String(64)),
    Column("keyed_from", BigInteger),
    Column("mac", String(64)),
)

# ----- outbound queue (migration 0002) -------------------------------------------------------
# One row per queued message: the envelope in clear (addresses route mail), the raw message
# sealed in a blob (scope "queue"); ``blob_id`` becomes NULL once no recipient needs it.
# Origin ids are a trace, not foreign keys: removing a mailbox must not be blocked by its
# queued mail.
outbound_messages = Table(
    "outbound_messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("blob_id", String(32)),
    Column("size", BigInteger, nullable=False),
    Column("mail_from", String(320), nullable=False, server_default=""),
    Column("envid", String(100)),
    Column("ret", String(4)),
    Column("origin", String(320), nullable=False, server_default=""),
    Column("origin_account_id", Integer),
    Column("origin_mailbox_id", Integer),
    # SHA-256 of the Message-ID, so the sender's trace can follow the message (0011)
    Column("trace_key", String(64)),
    _ts("created_at"),
)

# One row per recipient: its delivery state, retry schedule, last reply, RFC 3461 NOTIFY and
# ORCPT, and a lease (owner, until) so that two nodes never work on the same row at once.
# ``report`` names a DSN still to send for it ("failed", "delayed", "relayed"; "" = none).
outbound_recipients = Table(
    "outbound_recipients",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("outbound_messages.id"),
        nullable=False,
        index=True,
    ),
    # in clear while the recipient waits; "" once final (delivered, bounced, expired), when
    # the address and ORCPT move to ``address_sealed`` (scope "queue", record
    # ``recipient:<id>``, field ``address``; migration 0019)
    Column("address", String(320), nullable=False),
    Column("address_sealed", LargeBinary),
    Column("domain", String(255), nullable=False),
    Column("state", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _ts("next_attempt_at"),
    _ts("last_attempt_at", nullable=True),
    Column("last_code", Integer),
    Column("last_status", String(12)),
    Column("last_reply", String(500)),
    Column("remote_mta", String(255)),
    Column("notify", String(40), nullable=False, server_default=""),
    Column("orcpt", String(500)),
    Column("delay_notified", Boolean, nullable=False, server_default="0"),
    Column("report", String(10), nullable=False, server_default=""),
    Column("lease_owner", String(64)),
    _ts("lease_until", nullable=True),
    _ts("finished_at", nullable=True),
    Index("ix_outbound_recipients_due", "state", "next_attempt_at"),
    Index("ix_outbound_recipients_report", "report"),
)

# --- IMAP (issue 4, migration 0003) ----------------------------------------------------------

#: UIDs expunged from a folder and the MODSEQ of their expunge (RFC 7162 §3.2.10 VANISHED).
imap_expunged = Table(
    "imap_expunged",
    metadata,
    Column("folder_id", Integer, ForeignKey("folders.id"), primary_key=True),
    Column("uid", BigInteger, primary_key=True),
    Column("modseq", BigInteger, nullable=False),
    Index("ix_imap_expunged_folder_modseq", "folder_id", "modseq"),
)

#: The last UIDVALIDITY given in a mailbox: a folder created again under an old name gets a
#: new one (RFC 3501 §2.3.1.1).
imap_mailbox_state = Table(
    "imap_mailbox_state",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), primary_key=True),
    Column("last_uidvalidity", BigInteger, nullable=False),
)

#: The CNIL inactivity rule (issue 19, 0035; services/inactivity.py): when the owner and the
#: practice's admins were told the mailbox will be deleted for inactivity, and the practice's
#: exemption with its reason.
mailbox_inactivity = Table(
    "mailbox_inactivity",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), primary_key=True),
    _ts("notice_at", nullable=True),
    Column("exempt_reason", String(500)),
    Column("exempt_by", String(320)),
    _ts("exempt_at", nullable=True),
)

# --- web (issue 5, migration 0004): sessions, second factors, practice web settings ----------

#: Server-side web sessions. Only the SHA-256 of the random cookie token is stored.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("stage", String(10), nullable=False),  # "mfa", "enrol" or "full"
    Column("csrf_token", String(64), nullable=False),
    Column("source", String(100), nullable=False, server_default=""),
    Column("user_agent", String(200), nullable=False, server_default=""),
    Column("pending", Text),  # JSON: a WebAuthn challenge waiting for its answer
    _ts("created_at"),
    _ts("last_seen_at"),
    _ts("expires_at"),
    Index("ix_web_sessions_expires_at", "expires_at"),
)

#: One-time recovery codes (second factor of last resort), stored as SHA-256.
web_recovery_codes = Table(
    "web_recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("code_sha256", String(64), nullable=False),
    _ts("created_at"),
    _ts("used_at", nullable=True),
)

#: WebAuthn credentials (security keys, passkeys): public keys only.
webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("credential_id", String(1400), nullable=False, unique=True),  # base64url
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False, server_default="0"),
    Column("label", String(100), nullable=False),
    Column("transports", String(200), nullable=False, server_default=""),
    _ts("created_at"),
    _ts("last_used_at", nullable=True),
)

#: Per-practice web settings (one row per practice that changed a default).
web_practice_settings = Table(
    "web_practice_settings",
    metadata,
    Column("practice_id", Integer, ForeignKey("practices.id"), primary_key=True),
    Column("require_second_factor", Boolean, nullable=False, server_default="0"),
    _ts("updated_at"),
)

#: The first UID no session has seen yet as \\Recent (RFC 3501 §2.3.2: a message is recent for
#: the first session that notices it).
imap_folder_state = Table(
    "imap_folder_state",
    metadata,
    Column("folder_id", Integer, ForeignKey("folders.id"), primary_key=True),
    Column("recent_uid", BigInteger, nullable=False),
)

#: Subscriptions (RFC 3501 §6.3.6) an account holds besides its own existing folders (whose
#: ``folders.subscribed`` says it): shared-namespace names (per delegate, never the owner's
#: flag) and names whose folder was deleted (a subscription outlives its folder).
imap_subscriptions = Table(
    "imap_subscriptions",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(1000), primary_key=True),
)

#: The MSSanté whitelist in force (one row per import; the newest ``active`` row counts).
trust_lists = Table(
    "trust_lists",
    metadata,
    Column("id", Integer, primary_key=True),
    _ts("generated_at"),
    _ts("imported_at"),
    Column("source", String(500), nullable=False, server_default=""),
    Column("sha256", String(64), nullable=False),
    Column("domain_count", Integer, nullable=False),
    Column("entry_count", Integer, nullable=False),
)

#: Domain → certificate DNs of its operator, as listed by the active whitelist.
trust_domains = Table(
    "trust_domains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("list_id", Integer, ForeignKey("trust_lists.id"), nullable=False),
    Column("domain", String(253), nullable=False),
    Column("dn", String(1000), nullable=False),
    Column("dn_key", String(1000), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),
    Column("support_contact", String(500), nullable=False, server_default=""),
    Column("updated", String(50), nullable=False, server_default=""),
    Index("ix_trust_domains_list_domain", "list_id", "domain"),
)


#: What happened to a sent message, per recipient, for its sender's trace: queued, delivered,
#: deferred, bounced, expired, read (an RFC 8098 MDN came back). ``trace_key`` is the SHA-256
#: of the message's Message-ID (no content, no subject).
message_trace = Table(
    "message_trace",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("trace_key", String(64), nullable=False),
    # "" since migration 0019: the recipient is ``recipient_key``, a keyed pseudonym (HMAC of
    # the normalised address under a key derived from the mailbox's data key), and
    # ``recipient_sealed``, the address sealed with that data key (record ``trace:<trace_key>``,
    # field ``recipient:<recipient_key>``)
    Column("recipient", String(320), nullable=False),
    Column("recipient_key", String(64)),
    Column("recipient_sealed", LargeBinary),
    Column("event", String(12), nullable=False),
    Column("detail", String(500), nullable=False, server_default=""),
    _ts("ts"),
    Index("ix_message_trace_mailbox_key", "mailbox_id", "trace_key"),
    Index("ix_message_trace_ts", "ts"),
)

#: Per-mailbox preferences (one row once a default was changed).
mailbox_settings = Table(
    "mailbox_settings",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), primary_key=True),
    # RFC 8098: send a "displayed" MDN when a message asking for one is first opened
    Column("read_receipts", Boolean, nullable=False, server_default="0"),
)

#: A practice's address books: professional contacts and patients, never mixed (``kind``).
#: Names and addresses are sealed (scope ``contacts:<practice id>``); ``email_key`` is a keyed
#: hash of the address so that duplicates are found without storing it in clear.
contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("ref", String(32), nullable=False, unique=True),
    Column("email_key", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    _ts("created_at"),
    UniqueConstraint("practice_id", "email_key", name="uq_contacts_practice_email"),
)

#: API tokens of practice software (LPS): only a keyed hash of the token is stored; scopes and
#: mailboxes bound the token, and each call re-checks the account's access to the mailbox.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("label", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(100), nullable=False),
    Column("mailbox_ids", String(1000), nullable=False),
    _ts("created_at"),
    _ts("expires_at", nullable=True),
    _ts("revoked_at", nullable=True),
    _ts("last_used_at", nullable=True),
)

#: Per folder, the MODSEQ up to which expunged UIDs were pruned from ``imap_expunged``: a
#: QRESYNC client whose state is older gets every UID that no longer exists (RFC 7162 §3.2.5.2).
imap_expunge_horizon = Table(
    "imap_expunge_horizon",
    metadata,
    Column("folder_id", Integer, ForeignKey("folders.id"), primary_key=True),
    Column("modseq", BigInteger, nullable=False),
)

#: The secure pickup portal (issue #7): one message left on the server for one patient. The
#: link's token is random (256 bits); only its SHA-256 is stored. The patient's email and mobile
#: (``contact_sealed``) and the message (blob ``blob_id``) are sealed with the sender mailbox's
#: data key; ``blob_id`` is emptied when the content is purged (expiry). ``trace_key`` ties the
#: pickup to the sender's trace of the original message.
pickups = Table(
    "pickups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False),
    Column("sender_mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False, index=True),
    Column("patient_id", Integer, nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("record_id", String(32), nullable=False, unique=True),
    Column("contact_sealed", LargeBinary, nullable=False),
    Column("blob_id", String(32), nullable=True),
    Column("size", Integer, nullable=False),
    Column("trace_key", String(64), nullable=True),
    # the patient as the sender's trace names them (pseudonym and sealed copy, see
    # ``message_trace``), so that every pickup event is traced without the address (0019)
    Column("trace_recipient_key", String(64), nullable=True),
    Column("trace_recipient_sealed", LargeBinary, nullable=True),
    Column("passphrase_hash", String(200), nullable=True),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("revoked_at", nullable=True),
    _ts("locked_at", nullable=True),
    _ts("purged_at", nullable=True),
    Index("ix_pickups_expires_at", "expires_at"),
)

#: One-time codes sent by SMS for a pickup: a keyed hash only; a newer code ends older ones.
pickup_codes = Table(
    "pickup_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pickup_id", Integer, ForeignKey("pickups.id"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("used_at", nullable=True),
    Column("superseded", Boolean, nullable=False, server_default="0"),
)

#: What happened on a pickup (opened, downloaded, replied, code sent or failed, locked, revoked,
#: expired), content-free, shown to the sender.
pickup_events = Table(
    "pickup_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("pickup_id", Integer, ForeignKey("pickups.id"), nullable=False, index=True),
    Column("event", String(20), nullable=False),
    Column("detail", String(200), nullable=False, server_default=""),
    _ts("ts"),
)

#: Short-lived portal sessions: one cookie opens ONE pickup; only the token's SHA-256 is kept.
pickup_sessions = Table(
    "pickup_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pickup_id", Integer, ForeignKey("pickups.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64), nullable=False),
    _ts("created_at"),
    _ts("expires_at"),
)

#: IMAP SEARCH BODY/TEXT prefilter: per message, a Bloom filter of the trigrams of its words,
#: each trigram hashed with a secret key of its mailbox — no word is kept in clear. A message
#: whose filter lacks one of a search's trigrams cannot match; the others are checked exactly.
message_text_index = Table(
    "message_text_index",
    metadata,
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    #: The message's blob: a filter counts only for the content it was built from (SQLite may
    #: reuse the id of a deleted message).
    Column("blob_id", String(32), nullable=False),
    Column("bloom", LargeBinary, nullable=False),
)

#: The practice's patient registry (issue #7): names, birth date, INS, email, mobile and notes
#: are sealed together (scope ``patients:<practice>``, record ``ref``); ``email_key`` is a keyed
#: HMAC of the email for lookups. ``address_status``: unverified, pending (verification sent)
#: or verified (the patient confirmed from the link); only the token's SHA-256 is kept.
patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False),
    Column("ref", String(32), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("email_key", String(64), nullable=False),
    Column("delivery_mode", String(10), nullable=False),
    Column("shared_address", Boolean, nullable=False),
    Column("address_status", String(12), nullable=False),
    Column("verify_token_hash", String(64), unique=True),
    _ts("verify_expires_at", nullable=True),
    _ts("verified_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("practice_id", "email_key", name="uq_patients_practice_email"),
)

#: A practice's patient-channel settings: what to do when sensitive data is found in a message
#: leaving for a patient or outside the trust space (avertir, bloquer, retrait), its own extra
#: terms (one per line), and the mailbox patient mail is sent from (None: the first one).
patient_settings = Table(
    "patient_settings",
    metadata,
    Column("practice_id", Integer, ForeignKey("practices.id"), primary_key=True),
    Column("dlp_policy", String(10), nullable=False),
    Column("dlp_terms", Text, nullable=False),
    Column("patient_mailbox_id", Integer, ForeignKey("mailboxes.id")),
    # The practice's explicit leave for that mailbox to send ordinary mail outside the trust
    # space (audited); without it, it writes outside only to verified patients.
    Column("patient_mailbox_open", Boolean, nullable=False, server_default="0"),
)

#: The practice's charter (issue 16): one practice-wide row (``account_id`` NULL) and one row
#: per practitioner who overrides it; ``settings`` is the charter's JSON
#: (``domain.charter.to_dict``), public information kept in clear.
practice_charters = Table(
    "practice_charters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("settings", Text, nullable=False),
    _ts("updated_at"),
    Column("updated_by", String(320), nullable=False),
    UniqueConstraint("practice_id", "account_id", name="uq_practice_charters_practice_account"),
    # One practice-wide row: NULLs are distinct to the constraint above.
    Index(
        "uq_practice_charters_practice_wide",
        "practice_id",
        unique=True,
        sqlite_where=text("account_id IS NULL"),
        postgresql_where=text("account_id IS NULL"),
    ),
)

#: A practice's triage settings (issue 16): its message types and the urgent alert, as JSON
#: (``domain.triage_settings.to_dict``); no row: the default types and no alert.
practice_triage = Table(
    "practice_triage",
    metadata,
    Column("practice_id", Integer, ForeignKey("practices.id"), primary_key=True),
    Column("settings", Text, nullable=False),
    _ts("updated_at"),
    Column("updated_by", String(320), nullable=False),
)

#: POP3 exclusive access (RFC 1939 §8) across the worker processes and nodes sharing the
#: database: the session holding a maildrop, until when (refreshed while it lives, so a killed
#: process's lease expires on its own). No foreign key: a lease is short-lived and a mailbox
#: removed meanwhile only leaves a row that expires.
pop3_leases = Table(
    "pop3_leases",
    metadata,
    Column("mailbox_id", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(100), nullable=False),
    _ts("expires_at"),
)

#: Per-client rate limits shared by every worker process and node (``services.rate_limits``):
#: one token bucket per limiter name and client (an address, a token id), its tokens as of
#: ``updated_at`` (seconds since the epoch). A bucket untouched for a minute is full, as if
#: absent: maintenance deletes those.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("client", String(100), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("allowed", Boolean, nullable=False),
)

#: Télétransmission lots (FSE) sent from TLT mailboxes: what their subject and envelope say
#: (sender number, compostage, invoice count, fund), nothing of their content; their delivery
#: (from the outbound queue), their ARL, and whether a later lot resent them.
tlt_lots = Table(
    "tlt_lots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("sender_number", String(14), nullable=False),
    Column("compostage", String(19), nullable=False),
    Column("sequence", String(6), nullable=True),
    Column("invoice_count", Integer, nullable=True),
    Column("fund", String(254), nullable=False),
    Column("test_mode", Boolean, nullable=False, server_default="0"),
    Column("size", Integer, nullable=False),
    Column("message_id", String(255), nullable=False, server_default=""),
    Column("stored_message_id", Integer, nullable=True),
    Column("queue_id", Integer, nullable=True, index=True),
    _ts("sent_at"),
    Column("delivery", String(10), nullable=False, server_default="queued"),
    Column("delivery_detail", String(300), nullable=False, server_default=""),
    _ts("delivery_at", nullable=True),
    Column("arl", String(16), nullable=True),
    _ts("arl_at", nullable=True),
    Column("resent_by", Integer, nullable=True),
    Column("resend_of", Integer, nullable=True),
    _ts("notified_at", nullable=True),
    _ts("archived_at", nullable=True),
    Index("ix_tlt_lots_mailbox_sent", "mailbox_id", "sent_at"),
    Index("ix_tlt_lots_compostage", "compostage"),
)

#: Returns received by TLT mailboxes (ARL, NOEMIE, unknown), matched to their lot when found;
#: an unmatched return is kept (``lot_id`` NULL) and shown.
tlt_returns = Table(
    "tlt_returns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practices.id"), nullable=False),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("lot_id", Integer, ForeignKey("tlt_lots.id"), nullable=True, index=True),
    Column("kind", String(16), nullable=False),
    Column("description", String(200), nullable=False, server_default=""),
    Column("compostage", String(19), nullable=True),
    Column("sender_number", String(14), nullable=True),
    Column("size", Integer, nullable=False),
    Column("stored_message_id", Integer, nullable=True),
    _ts("received_at"),
    Index("ix_tlt_returns_mailbox_received", "mailbox_id", "received_at"),
)

#: Insurer domains a practice's TLT mailboxes may write to, beyond the configured defaults
#: (complementary insurers): an exact domain or ``*.domain``.
tlt_insurer_domains = Table(
    "tlt_insurer_domains",
    metadata,
    Column("practice_id", Integer, ForeignKey("practices.id"), primary_key=True),
    Column("pattern", String(253), primary_key=True),
)

#: Practitioners' absences (issue 16): one per account, days inclusive (Europe/Paris), the
#: colleague named in the auto-reply, a short message of the practitioner's own.
absences = Table(
    "absences",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, unique=True),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("replacement_account_id", Integer, ForeignKey("accounts.id"), nullable=True),
    Column("message", Text, nullable=False, server_default=""),
    _ts("updated_at"),
    Column("updated_by", String(320), nullable=False),
)

#: Who each mailbox last answered automatically, and when (RFC 3834 §2: at most once per
#: sender within ``[auto_reply] once_per_days``): the sender as a keyed pseudonym under the
#: mailbox's data key, never in clear.
auto_reply_senders = Table(
    "auto_reply_senders",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), primary_key=True),
    Column("sender_key", String(64), primary_key=True),
    _ts("last_at"),
    Index("ix_auto_reply_senders_last_at", "last_at"),
)

#: The messages each mailbox answered automatically (never twice the same message, even an
#: urgent one): the SHA-256 of the Message-ID, or ``copy:<id>`` without one.
auto_reply_messages = Table(
    "auto_reply_messages",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), primary_key=True),
    Column("message_key", String(80), primary_key=True),
    Column("kind", String(16), nullable=False),
    _ts("sent_at"),
    Index("ix_auto_reply_messages_sent_at", "sent_at"),
)

#: The national MSSanté directory (issue 18): one row per import (``generation``); ``state``:
#: loading, active or retired. Public data (no health data), searched by every practice.
annuaire_imports = Table(
    "annuaire_imports",
    metadata,
    Column("id", Integer, primary_key=True),
    _ts("started_at"),
    _ts("finished_at", nullable=True),
    Column("state", String(10), nullable=False),
    Column("source", String(500), nullable=False, server_default=""),
    Column("sha256", String(64), nullable=False, server_default=""),
    Column("row_count", Integer, nullable=False, server_default="0"),
    Column("rejected_count", Integer, nullable=False, server_default="0"),
)

#: One row (``id`` 1): the generation searches read. Switching it is the import's only change
#: readers can see, so a search sees the old directory or the new one, never a mix.
annuaire_current = Table(
    "annuaire_current",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", Integer),
)

#: The directory's rows, per generation; ``seq`` is the row's line number in the imported file,
#: ``search`` its search tokens (see :mod:`caducee.domain.annuaire`) joined by spaces. Each
#: generation gets its own partial index on ``email`` (``ix_annuaire_entries_email_g<n>``),
#: built once its rows are in.
annuaire_entries = Table(
    "annuaire_entries",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("email", String(250), nullable=False),
    Column("mailbox_type", String(250), nullable=False),
    Column("national_id", String(250), nullable=False),
    Column("pp_id", String(250), nullable=False),
    Column("civility", String(250), nullable=False),
    Column("last_name", String(250), nullable=False),
    Column("first_name", String(250), nullable=False),
    Column("category", String(250), nullable=False),
    Column("profession_code", String(250), nullable=False),
    Column("profession", String(250), nullable=False),
    Column("specialty_code", String(250), nullable=False),
    Column("specialty", String(250), nullable=False),
    Column("structure_id", String(250), nullable=False),
    Column("organisation", Text, nullable=False),
    Column("service", String(250), nullable=False),
    Column("address", Text, nullable=False),
    Column("postcode", String(250), nullable=False),
    Column("city", String(250), nullable=False),
    Column("department", String(250), nullable=False),
    Column("country", String(250), nullable=False),
    Column("dematerialisation", String(250), nullable=False),
    Column("search", Text, nullable=False),
)

#: The directory's search index: one row per (row, folded word). No index of its own: each
#: generation gets a partial index on (token, seq) ``WHERE generation = <n>``
#: (``ix_annuaire_tokens_g<n>``), built in one sort once its rows are in, dropped with it. The
#: token compares byte-wise on PostgreSQL (collation "C") so that a prefix is a range.
annuaire_tokens = Table(
    "annuaire_tokens",
    metadata,
    Column("generation", Integer, nullable=False),
    Column(
        "token", String(40).with_variant(String(40, collation="C"), "postgresql"), nullable=False
    ),
    Column("seq", Integer, nullable=False),
)

#: The nodes serving this database (issue 20): one row per data directory (``node_id`` is kept
#: in ``<data dir>/node-id``), its heartbeat ``seen_at`` rewritten every few seconds while it
#: serves. ``caducee doctor`` lists them; ``serve`` refuses a file blob store while another is
#: alive.
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("data_dir", String(1024), nullable=False),
    Column("version", String(64), nullable=False),
    Column("schema_revision", String(32), nullable=False),
    Column("blob_store", String(16), nullable=False),
    Column("pid", Integer, nullable=False),
    _ts("started_at"),
    _ts("seen_at"),
)

#: One row, written by ``caducee migrate``: the schema's revision and the oldest code revision
#: that may still serve on it (older than ``revision`` when the newest migrations are additive).
schema_compat = Table(
    "schema_compat",
    metadata,
    Column("revision", String(32), primary_key=True),
    Column("oldest_compatible", String(32), nullable=False),
)
