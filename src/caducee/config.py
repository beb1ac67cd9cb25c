"""Settings: ``<data dir>/caducee.toml``, overridden by ``CADUCEE_*`` environment variables."""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caducee.domain.teletransmission import (
    DEFAULT_ARL_NEGATIVE_PATTERN,
    DEFAULT_ARL_POSITIVE_PATTERN,
    DEFAULT_NOEMIE_PATTERN,
    DEFAULT_SUBJECT_PATTERN,
    Patterns,
    check_domain_pattern,
    check_pattern,
    check_subdivision,
)
from caducee.errors import ConfigurationError, InvalidInput
from caducee.sms_settings import check_sms_settings

DEFAULT_DATA_DIR = Path("var/caducee")
CONFIG_NAME = "caducee.toml"
#: Where a serving node writes the addresses its listeners are bound to (``<data>/run/``).
LISTENERS_FILE = "listeners.json"

#: Production ports of every listener Caducée knows (later issues add the protocols).
PRODUCTION_LISTENERS: dict[str, str] = {
    "smtp": "0.0.0.0:25",
    "submission": "0.0.0.0:587",
    "submissions": "0.0.0.0:465",
    "imap": "0.0.0.0:143",
    "imaps": "0.0.0.0:993",
    "pop3": "0.0.0.0:110",
    "pop3s": "0.0.0.0:995",
    "https": "0.0.0.0:443",
}


@dataclass(frozen=True)
class TransportRoute:
    """A static route for one destination domain (overrides DNS MX lookups)."""

    host: str
    port: int = 25
    tls: str = "opportunistic"  # "none", "opportunistic" or "required" (verified certificate)


#: Largest ``blob_inline_max``: a bigger blob belongs in a file.
MAX_BLOB_INLINE = 1024 * 1024


@dataclass
class Settings:
    """Everything that configures one node. Paths are absolute."""

    data_dir: Path
    hostname: str = "localhost"
    database_url: str = ""
    blob_store: str = "files"  # "files" (data dir), "database" (blobs table) or "s3"
    # "files": blobs up to this size are rows of the database (0: every blob in a file)
    blob_inline_max: int = 100 * 1024
    # "s3" (section [blobs]): an S3-compatible object store (an HDS-certified host's); blobs
    # over blob_inline_max are objects ``<prefix>ab/cd/<blob id>`` of ``s3_bucket``. The keys
    # come from ``s3_credentials_file`` (TOML: access_key_id, secret_access_key) or from
    # CADUCEE_S3_ACCESS_KEY_ID / CADUCEE_S3_SECRET_ACCESS_KEY; never from caducee.toml itself.
    s3_endpoint: str = ""  # "https://s3.example.fr"; empty: the provider's default (AWS)
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_prefix: str = ""  # e.g. "caducee/": every object key starts with it
    s3_credentials_file: str = ""
    s3_access_key_id: str = field(default="", repr=False)
    s3_secret_access_key: str = field(default="", repr=False)
    listeners: dict[str, str] = field(default_factory=dict)
    audit_retention_days: int = 183
    #: The sender's trace of sent mail (per recipient, pseudonymised) is kept this long; 0 keeps
    #: it forever. A year answers « did my letter arrive? » long after the queue forgot it.
    trace_retention_days: int = 365
    #: Auto-replies (RFC 3834 §2): a mailbox answers one sender at most once in this many days
    #: (an urgent patient message is answered whatever this says), section ``[auto_reply]``.
    auto_reply_once_per_days: int = 4
    lockout_threshold: int = 5
    lockout_base_seconds: int = 30
    lockout_max_seconds: int = 3600
    default_quota_bytes: int = 5 * 1024**3
    # SMTP
    max_message_bytes: int = 25 * 1024 * 1024
    smtp_idle_timeout_seconds: int = 300  # RFC 5321 §4.5.3.2.7
    smtp_data_timeout_seconds: int = 600  # RFC 5321 §4.5.3.2.6
    # IMAP: how long one SEARCH may work (seconds, off the event loop); beyond, NO [LIMIT]
    imap_search_budget_seconds: float = 10.0
    # Event-loop lag probe (0: off): a callback or stall over this many milliseconds is logged
    # with the code that ran (section [server]); asyncio's debug mode is on while it is.
    loop_lag_warn_ms: int = 0
    # Heap snapshots (section [server], "": off): each process of the node traces its
    # allocations and writes a snapshot here every heap_profile_minutes (caducee.heap_profile).
    heap_profile_dir: str = ""
    heap_profile_minutes: float = 5.0
    # Worker processes sharing the listeners (section [server]): 0 = one per core, 1 = one
    # process and no supervisor (see caducee.supervisor)
    workers: int = 0
    # Outbound delivery
    transport: dict[str, TransportRoute] = field(default_factory=dict)
    require_tls_domains: list[str] = field(default_factory=list)
    outbound_ca_file: str = ""  # extra CA bundle to verify remote servers (tests, private PKI)
    queue_max_age_hours: int = 120
    queue_delay_notice_hours: int = 4
    #: How long an outbound worker's claim holds a recipient ([outbound] lease_seconds): a node
    #: that dies while delivering leaves its recipients to the others after this long.
    queue_lease_seconds: int = 3600
    # DNS resolver for MX, SPF, DKIM, DMARC: "" = the system's, else "host:port"
    dns_resolver: str = ""
    dkim_selector: str = "caducee"
    # MSSanté trust space: whitelist download (empty URL: imported by hand only)
    trust_list_url: str = ""
    trust_list_checksum_url: str = ""
    trust_list_refresh_hours: int = 24
    trust_list_max_age_days: int = 7
    #: How long a node trusts its in-memory copy of the active list before asking the database
    #: which list is active ([trust] snapshot_seconds): an import on another node is in force
    #: here within this delay (an import on this node, at once).
    trust_snapshot_seconds: float = 30.0
    # Several nodes on one PostgreSQL database (section [cluster], issue 20): each node writes
    # a heartbeat every heartbeat_seconds and is "alive" for 3 heartbeats; PostgreSQL with
    # blob_store = "files" is refused unless single_node = true (then only while no other node
    # is alive).
    cluster_single_node: bool = False
    cluster_heartbeat_seconds: float = 10.0
    # National MSSanté directory (annuaire): extraction download (empty URL: imported by hand
    # only), refresh period, largest file accepted
    annuaire_url: str = ""
    annuaire_refresh_hours: int = 24
    annuaire_max_mb: int = 512
    # MSSanté trust space TLS: CAs operators chain to, their CRLs, our operator certificate
    trust_ca_file: str = ""
    trust_crl_dir: str = ""
    trust_client_cert: str = ""  # empty: tls/server.crt
    trust_client_key: str = ""  # empty: tls/server.key
    mssante_product: str = ""  # X-MSS-NIL product reference; empty: "Caducee"
    mssante_test_ins: bool = False  # INS of the INSi test environment (OID 1.2.250.1.213.1.4.10)
    # ClamAV (issue 19): clamd's socket, "unix:/run/clamav/clamd.ctl" or "tcp:host:port";
    # empty: no scan. When clamd is down or slow: "tempfail" (451, the sender retries) or
    # "accept" (audited, never silent).
    antivirus_clamd: str = ""
    antivirus_timeout_seconds: float = 30.0
    antivirus_on_unavailable: str = "tempfail"
    # OpenID Connect (Pro Santé Connect): web login and SASL OAUTHBEARER/XOAUTH2
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid scope_all"
    oidc_acr_values: str = "eidas1"
    oidc_identifier_claim: str = "SubjectNameID"
    oidc_audience: str = ""  # of access tokens for SASL; empty: the client id
    # Where people reach the web server from outside: links in emails (patient portal, address
    # verification) start with it. Empty: https://<hostname>.
    public_url: str = ""
    # "production" (default) or "development" (the demo): development-only conveniences, such
    # as an SMS provider writing to a file, are refused in production.
    deployment: str = "production"
    # Per client address, on every mail door (SMTP, IMAP, POP3): connections at once, and new
    # connections per minute (a practice behind one NAT address may need more).
    connections_per_address: int = 20
    connections_per_minute: int = 120
    # Patient channel — SMS gateway (caducee.health.sms), section [sms] of caducee.toml.
    # provider: "" (no SMS), "fichier" (development: <data>/sms/outbox.jsonl), "webhook",
    # "smsfactor". sender: ≤ 11 letters or digits shown as the SMS sender ("" : the provider's).
    sms_provider: str = ""
    sms_sender: str = ""
    sms_url: str = ""  # webhook: required; smsfactor: empty = https://api.smsfactor.com
    sms_token: str = ""  # bearer token (also CADUCEE_SMS_TOKEN)
    sms_secret: str = ""  # webhook: HMAC-SHA256 key of the X-Caducee-Signature header
    sms_ca_file: str = ""  # extra CA bundle to verify the provider's certificate (tests)
    # Secure pickup portal (issue #7): how long a pickup stays on the server, the largest reply
    # a patient may send (all files together), in ``[patients]``.
    pickup_days: int = 30
    pickup_reply_max_bytes: int = 10 * 1024 * 1024
    # Télétransmission (issue #15), section [teletransmission]: the insurer domains every TLT
    # mailbox may write to (practices add their complementary insurers), the delays in French
    # working days (R161-47), the region whose public holidays count ("" : metropolitan France;
    # "57" Alsace-Moselle, "971" Guadeloupe...), the retention of lots and returns, the purge
    # after it (0: never), and the recognisers' patterns (regular expressions, case-insensitive).
    tlt_insurer_domains: list[str] = field(default_factory=lambda: ["*.rss.fr"])
    tlt_arl_working_days: int = 2
    tlt_resend_working_days: int = 2
    tlt_holiday_region: str = ""
    tlt_retention_days: int = 90
    tlt_purge_days: int = 0
    tlt_subject_pattern: str = DEFAULT_SUBJECT_PATTERN
    tlt_arl_positive_pattern: str = DEFAULT_ARL_POSITIVE_PATTERN
    tlt_arl_negative_pattern: str = DEFAULT_ARL_NEGATIVE_PATTERN
    tlt_noemie_pattern: str = DEFAULT_NOEMIE_PATTERN
    # Scheduled backups (issue 19), section [backup]: off while ``dir`` is empty. One every
    # ``interval_hours``, at ``hour`` (local time; -1: any hour) when the interval is a day or
    # more; the ``keep`` newest archives kept. ``pg_bin``: where pg_dump is ("" : found).
    backup_dir: str = ""
    backup_interval_hours: float = 24.0
    backup_hour: int = 2
    backup_keep: int = 7
    backup_pg_bin: str = ""
    # Accounts and mailboxes (issue #19), section [lifecycle]: mail to a disabled mailbox is
    # "accept"ed (kept for when it is enabled again) or "refuse"d (SMTP 550 5.2.1).
    disabled_mailbox_mail: str = "accept"
    # /metrics and /readyz (issue 21), section [metrics]: the client networks allowed to read
    # them, and a file holding a bearer token that also opens them (empty: none)
    metrics_allow: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    metrics_token_file: str = ""
    # Readiness (section [health]): a recipient due this long and claimed by no delivery worker
    # means the queue is stuck
    health_queue_stuck_minutes: int = 30
    # The CNIL inactivity rule (services/inactivity.py): a mailbox unused this many months is
    # deleted, after a notice to its owner and the practice's admins ``notice_days`` before.
    inactive_months: int = 12
    notice_days: int = 30
    # RGPD exports (issue #19), section [rgpd]: the most a mailbox export may hold (the
    # messages' stored bytes); a bigger mailbox gets a clear refusal.
    export_max_bytes: int = 10 * 1024 * 1024 * 1024

    @property
    def tlt_patterns(self) -> Patterns:
        return Patterns(
            subject=self.tlt_subject_pattern,
            arl_negative=self.tlt_arl_negative_pattern,
            arl_positive=self.tlt_arl_positive_pattern,
            noemie=self.tlt_noemie_pattern,
        )

    @property
    def worker_count(self) -> int:
        """How many worker processes ``caducee serve`` runs: ``workers``, or one per core this
        process may run on when it is 0."""
        if self.workers > 0:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)

    @property
    def public_base_url(self) -> str:
        """The web server's external base URL, without a trailing slash."""
        return (self.public_url or f"https://{self.hostname}").rstrip("/")

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def master_key_path(self) -> Path:
        return self.keys_dir / "master.key"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def listeners_path(self) -> Path:
        """``run/listeners.json``: the addresses the serving node's listeners are bound to."""
        return self.run_dir / LISTENERS_FILE

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_NAME

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'db.sqlite3'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"Paramètre {name} : nombre entier attendu, reçu {value!r}.",
            f"Setting {name}: integer expected, got {value!r}.",
        ) from None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigurationError(
        f"Paramètre {name} : true ou false attendu, reçu {value!r}.",
        f"Setting {name}: true or false expected, got {value!r}.",
    )


def _check_antivirus(settings: Settings) -> None:
    if settings.antivirus_on_unavailable not in ("tempfail", "accept"):
        raise ConfigurationError(
            "[antivirus] on_unavailable : « tempfail » ou « accept ».",
            "[antivirus] on_unavailable: 'tempfail' or 'accept'.",
        )
    if settings.antivirus_timeout_seconds <= 0:
        raise ConfigurationError(
            "[antivirus] timeout_seconds doit être positif.",
            "[antivirus] timeout_seconds must be positive.",
        )
    address = settings.antivirus_clamd
    if address and not (
        address.startswith(("/", "unix:/"))
        or (address.startswith("tcp:") and address.count(":") >= 2)
    ):
        raise ConfigurationError(
            f"[antivirus] clamd : « unix:/chemin » ou « tcp:hôte:port », pas {address!r}.",
            f"[antivirus] clamd: 'unix:/path' or 'tcp:host:port', not {address!r}.",
        )


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"Paramètre {name} : nombre attendu, reçu {value!r}.",
            f"Setting {name}: number expected, got {value!r}.",
        ) from None


def _transport(table: Any) -> dict[str, TransportRoute]:
    """``[outbound.transport]``: ``"domain" = { host = "…", port = 25, tls = "required" }``."""
    routes: dict[str, TransportRoute] = {}
    if not isinstance(table, dict):
        table = {}
    for domain, spec in table.items():
        if not isinstance(spec, dict) or "host" not in spec:
            raise ConfigurationError(
                f"Route [outbound.transport] « {domain} » invalide : "
                '{ host = "…", port = 25, tls = "none|opportunistic|required" } attendu.',
                f"Invalid [outbound.transport] route '{domain}': "
                '{ host = "…", port = 25, tls = "none|opportunistic|required" } expected.',
            )
        tls = str(spec.get("tls", "opportunistic"))
        if tls not in ("none", "opportunistic", "required"):
            raise ConfigurationError(
                f"Route « {domain} » : tls doit valoir none, opportunistic ou required.",
                f"Route '{domain}': tls must be none, opportunistic or required.",
            )
        routes[str(domain).lower()] = TransportRoute(
            str(spec["host"]), _int(spec.get("port", 25), f"transport {domain} port"), tls
        )
    return routes


def _load_teletransmission(settings: Settings, section: Any) -> None:
    """``[teletransmission]``: each value checked, with the setting's name in the error."""
    if not isinstance(section, dict):
        return
    domains = section.get("insurer_domains", settings.tlt_insurer_domains)
    if not isinstance(domains, list):
        raise ConfigurationError(
            "teletransmission.insurer_domains : liste de domaines attendue.",
            "teletransmission.insurer_domains: list of domains expected.",
        )
    try:
        settings.tlt_insurer_domains = [check_domain_pattern(str(d)) for d in domains]
        for name in ("arl_working_days", "resend_working_days", "retention_days", "purge_days"):
            attribute = f"tlt_{name}"
            value = _int(
                section.get(name, getattr(settings, attribute)), f"teletransmission.{name}"
            )
            if value < 0 or (name != "purge_days" and value < 1):
                raise ConfigurationError(
                    f"teletransmission.{name} : valeur positive attendue.",
                    f"teletransmission.{name}: positive value expected.",
                )
            setattr(settings, attribute, value)
        settings.tlt_holiday_region = check_subdivision(
            str(section.get("holiday_region", settings.tlt_holiday_region))
        )
        for name in ("subject", "arl_positive", "arl_negative", "noemie"):
            attribute = f"tlt_{name}_pattern"
            pattern = str(section.get(f"{name}_pattern", getattr(settings, attribute)))
            setattr(settings, attribute, check_pattern(f"{name}_pattern", pattern))
    except InvalidInput as error:
        raise ConfigurationError(
            f"[teletransmission] : {error.fr}", f"[teletransmission]: {error.en}"
        ) from None
    if 0 < settings.tlt_purge_days < settings.tlt_retention_days:
        raise ConfigurationError(
            "teletransmission.purge_days ne peut pas être inférieur à retention_days "
            f"({settings.tlt_retention_days} jours) : les lots sont gardés au moins ce temps.",
            "teletransmission.purge_days cannot be less than retention_days "
            f"({settings.tlt_retention_days} days): lots are kept at least that long.",
        )


def _load_backup(settings: Settings, section: Any) -> None:
    """``[backup]``: scheduled backups (off while ``dir`` is empty)."""
    if not isinstance(section, dict):
        return
    settings.backup_dir = str(section.get("dir", settings.backup_dir))
    settings.backup_pg_bin = str(section.get("pg_bin", settings.backup_pg_bin))
    settings.backup_interval_hours = _float(
        section.get("interval_hours", settings.backup_interval_hours), "backup.interval_hours"
    )
    settings.backup_hour = _int(section.get("hour", settings.backup_hour), "backup.hour")
    settings.backup_keep = _int(section.get("keep", settings.backup_keep), "backup.keep")
    if (
        settings.backup_interval_hours <= 0
        or not -1 <= settings.backup_hour <= 23
        or settings.backup_keep < 1
    ):
        raise ConfigurationError(
            "[backup] : interval_hours doit être positif, hour entre 0 et 23 (-1 : toute "
            "heure), keep au moins 1.",
            "[backup]: interval_hours must be positive, hour between 0 and 23 (-1: any "
            "hour), keep at least 1.",
        )


def _load_blobs(settings: Settings, section: Any) -> None:
    """``[blobs]``: where the S3 store is (``blob_store = "s3"``)."""
    if not isinstance(section, dict):
        return
    for name in ("endpoint", "bucket", "region", "prefix", "credentials_file"):
        attribute = f"s3_{name}"
        setattr(settings, attribute, str(section.get(f"s3_{name}", getattr(settings, attribute))))


def _load_s3_credentials(settings: Settings, env: Mapping[str, str]) -> None:
    """The S3 keys: the environment's, else the credentials file's (mode 0600 advised: it is
    read as is, like the master key's file, and never logged)."""
    settings.s3_endpoint = env.get("CADUCEE_S3_ENDPOINT", settings.s3_endpoint)
    settings.s3_bucket = env.get("CADUCEE_S3_BUCKET", settings.s3_bucket)
    key_id = env.get("CADUCEE_S3_ACCESS_KEY_ID", "")
    secret = env.get("CADUCEE_S3_SECRET_ACCESS_KEY", "")
    if key_id and secret:
        settings.s3_access_key_id, settings.s3_secret_access_key = key_id, secret
        return
    if not settings.s3_credentials_file or settings.blob_store != "s3":
        return
    path = Path(settings.s3_credentials_file)
    if not path.is_absolute():
        path = settings.data_dir / path
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"Fichier d'identifiants S3 {path} illisible ({type(exc).__name__}) : il doit "
            'contenir access_key_id = "…" et secret_access_key = "…".',
            f"S3 credentials file {path} is unreadable ({type(exc).__name__}): it must hold "
            'access_key_id = "…" and secret_access_key = "…".',
        ) from None
    settings.s3_access_key_id = str(doc.get("access_key_id", ""))
    settings.s3_secret_access_key = str(doc.get("secret_access_key", ""))


def _check_s3(settings: Settings) -> None:
    if not settings.s3_bucket:
        raise ConfigurationError(
            "blob_store = « s3 » : réglez [blobs] s3_bucket (et s3_endpoint, s3_region).",
            "blob_store = 's3': set [blobs] s3_bucket (and s3_endpoint, s3_region).",
        )
    if settings.s3_endpoint and not settings.s3_endpoint.startswith(("https://", "http://")):
        raise ConfigurationError(
            f"[blobs] s3_endpoint doit commencer par https:// (reçu {settings.s3_endpoint!r}).",
            f"[blobs] s3_endpoint must start with https:// (got {settings.s3_endpoint!r}).",
        )
    if bool(settings.s3_access_key_id) != bool(settings.s3_secret_access_key):
        raise ConfigurationError(
            "Identifiants S3 incomplets : access_key_id et secret_access_key vont ensemble.",
            "Incomplete S3 credentials: access_key_id and secret_access_key go together.",
        )


def load_settings(data_dir: Path | str | None = None) -> Settings:
    """Read ``caducee.toml`` in ``data_dir`` (if present), then apply ``CADUCEE_*`` overrides."""
    base = Path(data_dir or os.environ.get("CADUCEE_DATA") or DEFAULT_DATA_DIR).resolve()
    settings = Settings(data_dir=base)
    path = settings.config_path
    if path.exists():
        try:
            doc = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"Fichier de configuration {path} illisible : {exc}",
                f"Configuration file {path} is unreadable: {exc}",
            ) from None
        settings.hostname = str(doc.get("hostname", settings.hostname))
        settings.database_url = str(doc.get("database_url", settings.database_url))
        settings.blob_store = str(doc.get("blob_store", settings.blob_store))
        if "blob_inline_max" in doc:
            settings.blob_inline_max = _int(doc["blob_inline_max"], "blob_inline_max")
        _load_blobs(settings, doc.get("blobs", {}))
        settings.public_url = str(doc.get("public_url", settings.public_url))
        settings.deployment = str(doc.get("deployment", settings.deployment))
        client_limits = doc.get("limits", {})
        settings.connections_per_address = _int(
            client_limits.get("connections_per_address", settings.connections_per_address),
            "limits.connections_per_address",
        )
        settings.connections_per_minute = _int(
            client_limits.get("connections_per_minute", settings.connections_per_minute),
            "limits.connections_per_minute",
        )
        settings.listeners = {str(k): str(v) for k, v in doc.get("listeners", {}).items()}
        audit = doc.get("audit", {})
        settings.audit_retention_days = _int(
            audit.get("retention_days", settings.audit_retention_days), "audit.retention_days"
        )
        trace_section = doc.get("trace", {})
        settings.trace_retention_days = _int(
            trace_section.get("retention_days", settings.trace_retention_days),
            "trace.retention_days",
        )
        auto_reply = doc.get("auto_reply", {})
        settings.auto_reply_once_per_days = _int(
            auto_reply.get("once_per_days", settings.auto_reply_once_per_days),
            "auto_reply.once_per_days",
        )
        security = doc.get("security", {})
        settings.lockout_threshold = _int(
            security.get("lockout_threshold", settings.lockout_threshold),
            "security.lockout_threshold",
        )
        settings.lockout_base_seconds = _int(
            security.get("lockout_base_seconds", settings.lockout_base_seconds),
            "security.lockout_base_seconds",
        )
        settings.lockout_max_seconds = _int(
            security.get("lockout_max_seconds", settings.lockout_max_seconds),
            "security.lockout_max_seconds",
        )
        mail = doc.get("mail", {})
        settings.default_quota_bytes = _int(
            mail.get("default_quota_bytes", settings.default_quota_bytes),
            "mail.default_quota_bytes",
        )
        smtp = doc.get("smtp", {})
        settings.max_message_bytes = _int(
            smtp.get("max_message_bytes", settings.max_message_bytes), "smtp.max_message_bytes"
        )
        settings.smtp_idle_timeout_seconds = _int(
            smtp.get("idle_timeout_seconds", settings.smtp_idle_timeout_seconds),
            "smtp.idle_timeout_seconds",
        )
        settings.smtp_data_timeout_seconds = _int(
            smtp.get("data_timeout_seconds", settings.smtp_data_timeout_seconds),
            "smtp.data_timeout_seconds",
        )
        imap = doc.get("imap", {})
        settings.imap_search_budget_seconds = _float(
            imap.get("search_budget_seconds", settings.imap_search_budget_seconds),
            "imap.search_budget_seconds",
        )
        server = doc.get("server", {})
        settings.loop_lag_warn_ms = _int(
            server.get("loop_lag_warn_ms", settings.loop_lag_warn_ms), "server.loop_lag_warn_ms"
        )
        settings.workers = _int(server.get("workers", settings.workers), "server.workers")
        settings.heap_profile_dir = str(server.get("heap_profile_dir", settings.heap_profile_dir))
        settings.heap_profile_minutes = _float(
            server.get("heap_profile_minutes", settings.heap_profile_minutes),
            "server.heap_profile_minutes",
        )
        outbound = doc.get("outbound", {})
        settings.transport = _transport(outbound.get("transport", {}))
        settings.require_tls_domains = [str(d).lower() for d in outbound.get("require_tls", [])]
        settings.outbound_ca_file = str(outbound.get("ca_file", ""))
        settings.queue_max_age_hours = _int(
            outbound.get("max_age_hours", settings.queue_max_age_hours), "outbound.max_age_hours"
        )
        settings.queue_delay_notice_hours = _int(
            outbound.get("delay_notice_hours", settings.queue_delay_notice_hours),
            "outbound.delay_notice_hours",
        )
        settings.queue_lease_seconds = _int(
            outbound.get("lease_seconds", settings.queue_lease_seconds), "outbound.lease_seconds"
        )
        settings.dns_resolver = str(doc.get("dns", {}).get("resolver", ""))
        settings.dkim_selector = str(doc.get("dkim", {}).get("selector", settings.dkim_selector))
        trust = doc.get("trust", {})
        settings.trust_list_url = str(trust.get("list_url", settings.trust_list_url))
        settings.trust_list_checksum_url = str(
            trust.get("checksum_url", settings.trust_list_checksum_url)
        )
        settings.trust_list_refresh_hours = _int(
            trust.get("refresh_hours", settings.trust_list_refresh_hours), "trust.refresh_hours"
        )
        settings.trust_list_max_age_days = _int(
            trust.get("max_age_days", settings.trust_list_max_age_days), "trust.max_age_days"
        )
        settings.trust_snapshot_seconds = _float(
            trust.get("snapshot_seconds", settings.trust_snapshot_seconds),
            "trust.snapshot_seconds",
        )
        cluster = doc.get("cluster", {})
        settings.cluster_single_node = _bool(
            cluster.get("single_node", settings.cluster_single_node), "cluster.single_node"
        )
        settings.cluster_heartbeat_seconds = _float(
            cluster.get("heartbeat_seconds", settings.cluster_heartbeat_seconds),
            "cluster.heartbeat_seconds",
        )
        settings.trust_ca_file = str(trust.get("ca_file", settings.trust_ca_file))
        annuaire = doc.get("annuaire", {})
        settings.annuaire_url = str(annuaire.get("url", settings.annuaire_url))
        settings.annuaire_refresh_hours = _int(
            annuaire.get("refresh_hours", settings.annuaire_refresh_hours),
            "annuaire.refresh_hours",
        )
        settings.annuaire_max_mb = _int(
            annuaire.get("max_mb", settings.annuaire_max_mb), "annuaire.max_mb"
        )
        settings.trust_crl_dir = str(trust.get("crl_dir", settings.trust_crl_dir))
        settings.trust_client_cert = str(trust.get("client_cert", settings.trust_client_cert))
        settings.trust_client_key = str(trust.get("client_key", settings.trust_client_key))
        settings.mssante_product = str(trust.get("product", settings.mssante_product))
        settings.mssante_test_ins = _bool(
            trust.get("test_ins", settings.mssante_test_ins), "trust.test_ins"
        )
        antivirus = doc.get("antivirus", {})
        settings.antivirus_clamd = str(antivirus.get("clamd", settings.antivirus_clamd))
        settings.antivirus_timeout_seconds = _float(
            antivirus.get("timeout_seconds", settings.antivirus_timeout_seconds),
            "antivirus.timeout_seconds",
        )
        settings.antivirus_on_unavailable = str(
            antivirus.get("on_unavailable", settings.antivirus_on_unavailable)
        )
        oidc = doc.get("oidc", {})
        for name in (
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "acr_values",
            "identifier_claim",
            "audience",
        ):
            attribute = f"oidc_{name}"
            setattr(settings, attribute, str(oidc.get(name, getattr(settings, attribute))))
        sms = doc.get("sms", {})
        for name in ("provider", "sender", "url", "token", "secret", "ca_file"):
            attribute = f"sms_{name}"
            setattr(settings, attribute, str(sms.get(name, getattr(settings, attribute))))
        patients = doc.get("patients", {})
        settings.pickup_days = _int(
            patients.get("pickup_days", settings.pickup_days), "patients.pickup_days"
        )
        settings.pickup_reply_max_bytes = _int(
            patients.get("pickup_reply_max_bytes", settings.pickup_reply_max_bytes),
            "patients.pickup_reply_max_bytes",
        )
        _load_teletransmission(settings, doc.get("teletransmission", {}))
        _load_backup(settings, doc.get("backup", {}))
        lifecycle = doc.get("lifecycle", {})
        settings.disabled_mailbox_mail = str(
            lifecycle.get("disabled_mailbox_mail", settings.disabled_mailbox_mail)
        )
        _load_metrics(settings, doc.get("metrics", {}), doc.get("health", {}))
        settings.inactive_months = _int(
            lifecycle.get("inactive_months", settings.inactive_months), "lifecycle.inactive_months"
        )
        settings.notice_days = _int(
            lifecycle.get("notice_days", settings.notice_days), "lifecycle.notice_days"
        )
        rgpd = doc.get("rgpd", {})
        settings.export_max_bytes = _int(
            rgpd.get("export_max_bytes", settings.export_max_bytes), "rgpd.export_max_bytes"
        )
    env = os.environ
    settings.oidc_client_secret = env.get("CADUCEE_OIDC_CLIENT_SECRET", settings.oidc_client_secret)
    settings.dns_resolver = env.get("CADUCEE_DNS_RESOLVER", settings.dns_resolver)
    settings.hostname = env.get("CADUCEE_HOSTNAME", settings.hostname)
    settings.database_url = env.get("CADUCEE_DATABASE_URL", settings.database_url)
    settings.blob_store = env.get("CADUCEE_BLOB_STORE", settings.blob_store)
    _load_s3_credentials(settings, env)
    if "CADUCEE_BLOB_INLINE_MAX" in env:
        settings.blob_inline_max = _int(env["CADUCEE_BLOB_INLINE_MAX"], "CADUCEE_BLOB_INLINE_MAX")
    if "CADUCEE_AUDIT_RETENTION_DAYS" in env:
        settings.audit_retention_days = _int(
            env["CADUCEE_AUDIT_RETENTION_DAYS"], "CADUCEE_AUDIT_RETENTION_DAYS"
        )
    if "CADUCEE_TRACE_RETENTION_DAYS" in env:
        settings.trace_retention_days = _int(
            env["CADUCEE_TRACE_RETENTION_DAYS"], "CADUCEE_TRACE_RETENTION_DAYS"
        )
    for name in PRODUCTION_LISTENERS:
        override = env.get(f"CADUCEE_LISTEN_{name.upper()}")
        if override:
            settings.listeners[name] = override
    settings.public_url = env.get("CADUCEE_PUBLIC_URL", settings.public_url)
    if "CADUCEE_LOOP_LAG_WARN_MS" in env:
        settings.loop_lag_warn_ms = _int(
            env["CADUCEE_LOOP_LAG_WARN_MS"], "CADUCEE_LOOP_LAG_WARN_MS"
        )
    settings.heap_profile_dir = env.get("CADUCEE_HEAP_PROFILE_DIR", settings.heap_profile_dir)
    settings.antivirus_clamd = env.get("CADUCEE_CLAMD", settings.antivirus_clamd)
    _check_antivirus(settings)
    if "CADUCEE_WORKERS" in env:
        settings.workers = _int(env["CADUCEE_WORKERS"], "CADUCEE_WORKERS")
    if settings.workers < 0:
        raise ConfigurationError(
            "server.workers doit être positif ou nul (0 : un processus par cœur).",
            "server.workers must be zero or positive (0: one process per core).",
        )
    if settings.imap_search_budget_seconds <= 0 or settings.loop_lag_warn_ms < 0:
        raise ConfigurationError(
            "imap.search_budget_seconds doit être positif et server.loop_lag_warn_ms positif "
            "ou nul (0 : sonde désactivée).",
            "imap.search_budget_seconds must be positive and server.loop_lag_warn_ms zero or "
            "positive (0: probe off).",
        )
    if settings.heap_profile_minutes <= 0:
        raise ConfigurationError(
            "server.heap_profile_minutes doit être positif.",
            "server.heap_profile_minutes must be positive.",
        )
    if settings.annuaire_refresh_hours < 1 or settings.annuaire_max_mb < 1:
        raise ConfigurationError(
            "annuaire.refresh_hours et annuaire.max_mb doivent valoir au moins 1.",
            "annuaire.refresh_hours and annuaire.max_mb must be at least 1.",
        )
    if settings.connections_per_address < 1 or settings.connections_per_minute < 1:
        raise ConfigurationError(
            "[limits] connections_per_address et connections_per_minute doivent valoir au moins 1.",
            "[limits] connections_per_address and connections_per_minute must be at least 1.",
        )
    settings.sms_token = env.get("CADUCEE_SMS_TOKEN", settings.sms_token)
    settings.sms_secret = env.get("CADUCEE_SMS_SECRET", settings.sms_secret)
    if settings.deployment not in ("production", "development"):
        raise ConfigurationError(
            f"deployment doit valoir « production » ou « development »,"
            f" pas {settings.deployment!r}.",
            f"deployment must be 'production' or 'development', not {settings.deployment!r}.",
        )
    check_sms_settings(settings)
    if settings.disabled_mailbox_mail not in ("accept", "refuse"):
        raise ConfigurationError(
            "lifecycle.disabled_mailbox_mail doit valoir « accept » ou « refuse », pas "
            f"{settings.disabled_mailbox_mail!r}.",
            "lifecycle.disabled_mailbox_mail must be 'accept' or 'refuse', not "
            f"{settings.disabled_mailbox_mail!r}.",
        )
    if not 1 <= settings.inactive_months <= 120:
        raise ConfigurationError(
            "lifecycle.inactive_months doit être compris entre 1 et 120 "
            f"(reçu {settings.inactive_months}).",
            "lifecycle.inactive_months must be between 1 and 120 "
            f"(got {settings.inactive_months}).",
        )
    if not 1 <= settings.notice_days <= 28 * settings.inactive_months - 1:
        raise ConfigurationError(
            "lifecycle.notice_days doit être compris entre 1 et la durée d'inactivité "
            f"(reçu {settings.notice_days}).",
            f"lifecycle.notice_days must be between 1 and the inactivity period "
            f"(got {settings.notice_days}).",
        )
    if not 1 <= settings.auto_reply_once_per_days <= 365:
        raise ConfigurationError(
            "auto_reply.once_per_days doit être compris entre 1 et 365 "
            f"(reçu {settings.auto_reply_once_per_days}).",
            "auto_reply.once_per_days must be between 1 and 365 "
            f"(got {settings.auto_reply_once_per_days}).",
        )
    if settings.public_url and not settings.public_url.startswith(("https://", "http://")):
        raise ConfigurationError(
            f"public_url doit commencer par https:// (reçu {settings.public_url!r}).",
            f"public_url must start with https:// (got {settings.public_url!r}).",
        )
    if settings.queue_lease_seconds < 1:
        raise ConfigurationError(
            "outbound.lease_seconds doit valoir au moins 1.",
            "outbound.lease_seconds must be at least 1.",
        )
    if settings.trust_snapshot_seconds < 0 or settings.cluster_heartbeat_seconds <= 0:
        raise ConfigurationError(
            "trust.snapshot_seconds doit être positif ou nul et cluster.heartbeat_seconds "
            "strictement positif.",
            "trust.snapshot_seconds must be zero or positive and cluster.heartbeat_seconds "
            "positive.",
        )
    if settings.blob_store not in ("files", "database", "s3"):
        raise ConfigurationError(
            "blob_store doit valoir « files », « database » ou « s3 », "
            f"pas {settings.blob_store!r}.",
            f"blob_store must be 'files', 'database' or 's3', not {settings.blob_store!r}.",
        )
    if settings.blob_store == "s3":
        _check_s3(settings)
    if not 0 <= settings.blob_inline_max <= MAX_BLOB_INLINE:
        raise ConfigurationError(
            f"blob_inline_max doit être compris entre 0 et {MAX_BLOB_INLINE} octets, "
            f"pas {settings.blob_inline_max}.",
            f"blob_inline_max must be between 0 and {MAX_BLOB_INLINE} bytes, "
            f"not {settings.blob_inline_max}.",
        )
    return settings


def _load_metrics(settings: Settings, metrics: dict[str, Any], health: dict[str, Any]) -> None:
    allow = metrics.get("allow", settings.metrics_allow)
    if not isinstance(allow, list):
        raise ConfigurationError(
            '[metrics] allow : une liste de réseaux, par exemple ["127.0.0.1/32"].',
            '[metrics] allow: a list of networks, e.g. ["127.0.0.1/32"].',
        )
    for network in allow:
        try:
            ipaddress.ip_network(str(network), strict=False)
        except ValueError:
            raise ConfigurationError(
                f"[metrics] allow : réseau invalide {network!r}.",
                f"[metrics] allow: invalid network {network!r}.",
            ) from None
    settings.metrics_allow = [str(n) for n in allow]
    settings.metrics_token_file = str(metrics.get("token_file", settings.metrics_token_file))
    settings.health_queue_stuck_minutes = _int(
        health.get("queue_stuck_minutes", settings.health_queue_stuck_minutes),
        "health.queue_stuck_minutes",
    )


def render_config(settings: Settings) -> str:
    """The TOML text of ``settings`` as ``caducee init`` writes it."""
    lines = [
        "# Configuration de Caducée. Chaque valeur peut être remplacée par une variable",
        "# d'environnement CADUCEE_* (voir docs/operations.md).",
        f'hostname = "{settings.hostname}"',
        "# Vide : SQLite dans le répertoire de données. PostgreSQL :",
        '# database_url = "postgresql+psycopg://caducee@/caducee?host=/run/postgresql"',
        f'database_url = "{settings.database_url}"',
        '# "files" (répertoire de données), "database" (table, pour plusieurs nœuds) ou "s3"',
        "# (stockage objet compatible S3 d'un hébergeur HDS, section [blobs])",
        f'blob_store = "{settings.blob_store}"',
        "# files, s3 : blobs jusqu'à cette taille (octets) dans la base ; 0 : aucun",
        f"blob_inline_max = {settings.blob_inline_max}",
        '# "production" ou "development" (démonstration : fournisseur SMS « fichier » permis)',
        f"deployment = {json.dumps(settings.deployment)}",
    ]
    if settings.public_url:
        lines += [
            "# Adresse du serveur web vue de l'extérieur (liens des courriels)",
            f"public_url = {json.dumps(settings.public_url)}",
        ]
    lines += [
        "",
        "[listeners]",
    ]
    lines += [f'{name} = "{addr}"' for name, addr in settings.listeners.items()]
    lines += [
        "",
        "[audit]",
        f"retention_days = {settings.audit_retention_days}",
        "",
        "[trace]",
        f"retention_days = {settings.trace_retention_days}",
        "",
        "[auto_reply]",
        "# Réponses automatiques (RFC 3834) : une au plus par expéditeur et par boîte en",
        "# ce nombre de jours (une urgence reçoit toujours les numéros d'urgence).",
        f"once_per_days = {settings.auto_reply_once_per_days}",
        "",
        "[security]",
        f"lockout_threshold = {settings.lockout_threshold}",
        f"lockout_base_seconds = {settings.lockout_base_seconds}",
        f"lockout_max_seconds = {settings.lockout_max_seconds}",
        "",
        "[mail]",
        f"default_quota_bytes = {settings.default_quota_bytes}",
        "",
        "[smtp]",
        f"max_message_bytes = {settings.max_message_bytes}",
        "",
        "[imap]",
        "# Temps de calcul maximal d'une recherche (s) ; au-delà : NO [LIMIT]",
        f"search_budget_seconds = {settings.imap_search_budget_seconds:g}",
        "",
        "[server]",
        "# Sonde de latence de la boucle d'événements (ms ; 0 : désactivée, diagnostic)",
        f"loop_lag_warn_ms = {settings.loop_lag_warn_ms}",
        "# Processus de service (0 : un par cœur ; 1 : un seul, sans superviseur)",
        f"workers = {settings.workers}",
        "# Instantanés du tas de chaque processus, toutes les heap_profile_minutes (diagnostic ;",
        "# vide : désactivé ; python -m bench.heap_diff REP les compare)",
        f"heap_profile_dir = {json.dumps(settings.heap_profile_dir)}",
        f"heap_profile_minutes = {settings.heap_profile_minutes:g}",
        "",
        "[cluster]",
        '# Plusieurs nœuds sur une base PostgreSQL : blob_store = "database". PostgreSQL avec',
        "# blob_store = \"files\" n'est permis qu'en nœud unique déclaré (single_node = true).",
        f"single_node = {json.dumps(settings.cluster_single_node)}",
        "# Battement de cœur du nœud dans la base (s) ; vivant pendant trois battements",
        f"heartbeat_seconds = {settings.cluster_heartbeat_seconds:g}",
        "",
        "[outbound]",
        "# Domaines exigeant TLS avec certificat vérifié / domains requiring verified TLS",
        f"require_tls = {json.dumps(settings.require_tls_domains)}",
        f"ca_file = {json.dumps(settings.outbound_ca_file)}",
        f"max_age_hours = {settings.queue_max_age_hours}",
        f"delay_notice_hours = {settings.queue_delay_notice_hours}",
        "# Durée d'une prise en charge ; un nœud arrêté brutalement la rend après ce délai (s)",
        f"lease_seconds = {settings.queue_lease_seconds}",
        "",
        "[outbound.transport]",
        '# "domaine.fr" = { host = "relais.exemple.fr", port = 25, tls = "required" }',
    ]
    lines += [
        f"{json.dumps(domain)} = {{ host = {json.dumps(route.host)}, port = {route.port}, "
        f"tls = {json.dumps(route.tls)} }}"
        for domain, route in settings.transport.items()
    ]
    lines += [
        "",
        "[dns]",
        '# Vide : résolveur du système ; sinon "hôte:port"',
        f"resolver = {json.dumps(settings.dns_resolver)}",
        "",
        "[dkim]",
        f"selector = {json.dumps(settings.dkim_selector)}",
        "",
        "[trust]",
        "# Liste blanche MSSanté : adresse de téléchargement (vide : import manuel par",
        "# `caducee trust import`), empreinte SHA-256, période et âge maximal avant alerte.",
        f"list_url = {json.dumps(settings.trust_list_url)}",
        f"checksum_url = {json.dumps(settings.trust_list_checksum_url)}",
        f"refresh_hours = {settings.trust_list_refresh_hours}",
        f"max_age_days = {settings.trust_list_max_age_days}",
        "# Une liste importée sur un autre nœud s'applique ici après ce délai (secondes)",
        f"snapshot_seconds = {settings.trust_snapshot_seconds:g}",
        "# Autorités (IGC-Santé) des certificats d'opérateurs, leurs CRL, notre certificat client",
        f"ca_file = {json.dumps(settings.trust_ca_file)}",
        f"crl_dir = {json.dumps(settings.trust_crl_dir)}",
        f"client_cert = {json.dumps(settings.trust_client_cert)}",
        f"client_key = {json.dumps(settings.trust_client_key)}",
        "# Référence produit de l'en-tête X-MSS-NIL (vide : Caducee)",
        f"product = {json.dumps(settings.mssante_product)}",
        "# INS de l'environnement de test INSi (OID 1.2.250.1.213.1.4.10) : qualification, démo",
        f"test_ins = {json.dumps(settings.mssante_test_ins)}",
        "",
        "[antivirus]",
        "# Démon ClamAV (paquet clamav-daemon) : « unix:/run/clamav/clamd.ctl » ou",
        "# « tcp:127.0.0.1:3310 » ; vide : pas d'analyse. Sa StreamMaxLength doit couvrir",
        "# max_message_bytes. clamd absent ou lent : « tempfail » (451, l'expéditeur réessaie)",
        "# ou « accept » (accepté sans analyse, journalisé et audité).",
        f"clamd = {json.dumps(settings.antivirus_clamd)}",
        f"timeout_seconds = {settings.antivirus_timeout_seconds:g}",
        f"on_unavailable = {json.dumps(settings.antivirus_on_unavailable)}",
        "",
        "[annuaire]",
        "# Annuaire national MSSanté (extraction-correspondance-mssante.txt) : adresse de",
        "# téléchargement (vide : import manuel par `caducee directory import`), période de",
        "# rafraîchissement, taille maximale du fichier (Mo).",
        f"url = {json.dumps(settings.annuaire_url)}",
        f"refresh_hours = {settings.annuaire_refresh_hours}",
        f"max_mb = {settings.annuaire_max_mb}",
        "",
        "[oidc]",
        "# Pro Santé Connect (ou autre fournisseur OpenID Connect) ; vide : désactivé.",
        "# Le secret peut venir de CADUCEE_OIDC_CLIENT_SECRET.",
        f"issuer = {json.dumps(settings.oidc_issuer)}",
        f"client_id = {json.dumps(settings.oidc_client_id)}",
        f"client_secret = {json.dumps(settings.oidc_client_secret)}",
        f"scopes = {json.dumps(settings.oidc_scopes)}",
        f"acr_values = {json.dumps(settings.oidc_acr_values)}",
        f"identifier_claim = {json.dumps(settings.oidc_identifier_claim)}",
        f"audience = {json.dumps(settings.oidc_audience)}",
        "",
        "[sms]",
        '# Fournisseur : "" (aucun), "fichier" (développement), "webhook", "smsfactor".',
        "# Le jeton peut venir de CADUCEE_SMS_TOKEN, le secret de CADUCEE_SMS_SECRET.",
        f"provider = {json.dumps(settings.sms_provider)}",
        f"sender = {json.dumps(settings.sms_sender)}",
        f"url = {json.dumps(settings.sms_url)}",
        f"token = {json.dumps(settings.sms_token)}",
        f"secret = {json.dumps(settings.sms_secret)}",
        f"ca_file = {json.dumps(settings.sms_ca_file)}",
        "",
        "[teletransmission]",
        "# Domaines des organismes (caisses ; les cabinets ajoutent leurs complémentaires)",
        f"insurer_domains = {json.dumps(settings.tlt_insurer_domains)}",
        '# Délais en jours ouvrés (R161-47), région des jours fériés ("57" : Alsace-Moselle)',
        f"arl_working_days = {settings.tlt_arl_working_days}",
        f"resend_working_days = {settings.tlt_resend_working_days}",
        f"holiday_region = {json.dumps(settings.tlt_holiday_region)}",
        "# Conservation minimale des lots et retours (jours) ; purge après (0 : jamais)",
        f"retention_days = {settings.tlt_retention_days}",
        f"purge_days = {settings.tlt_purge_days}",
        "# Motifs de reconnaissance (expressions régulières, sans distinction de casse)",
        f"subject_pattern = {json.dumps(settings.tlt_subject_pattern)}",
        f"arl_positive_pattern = {json.dumps(settings.tlt_arl_positive_pattern)}",
        f"arl_negative_pattern = {json.dumps(settings.tlt_arl_negative_pattern)}",
        f"noemie_pattern = {json.dumps(settings.tlt_noemie_pattern)}",
        "",
        "[backup]",
        "# Sauvegardes planifiées (vide : aucune) : répertoire, intervalle (heures), heure",
        "# locale (-1 : toute heure), archives gardées ; pg_bin : répertoire de pg_dump.",
        "# Créez d'abord la clé : caducee backup key create",
        f"dir = {json.dumps(settings.backup_dir)}",
        f"interval_hours = {settings.backup_interval_hours:g}",
        f"hour = {settings.backup_hour}",
        f"keep = {settings.backup_keep}",
        f"pg_bin = {json.dumps(settings.backup_pg_bin)}",
        "",
        "[lifecycle]",
        '# Courrier vers une boîte désactivée : "accept" (gardé) ou "refuse" (550 5.2.1)',
        f"disabled_mailbox_mail = {json.dumps(settings.disabled_mailbox_mail)}",
        "# Règle CNIL : boîte inutilisée depuis N mois supprimée, préavis de J jours",
        f"inactive_months = {settings.inactive_months}",
        f"notice_days = {settings.notice_days}",
        "",
        "[blobs]",
        '# blob_store = "s3" : point d\'accès (https://…), compartiment, région, préfixe des clés',
        "# d'objets ; identifiants dans un fichier TOML (access_key_id, secret_access_key ;",
        "# droits 0600) ou CADUCEE_S3_ACCESS_KEY_ID / CADUCEE_S3_SECRET_ACCESS_KEY.",
        f"s3_endpoint = {json.dumps(settings.s3_endpoint)}",
        f"s3_bucket = {json.dumps(settings.s3_bucket)}",
        f"s3_region = {json.dumps(settings.s3_region)}",
        f"s3_prefix = {json.dumps(settings.s3_prefix)}",
        f"s3_credentials_file = {json.dumps(settings.s3_credentials_file)}",
        "",
        "[metrics]",
        "# /metrics et /readyz : réseaux clients autorisés, et fichier d'un jeton (en-tête",
        "# Authorization: Bearer) qui les ouvre aussi depuis ailleurs (vide : aucun).",
        f"allow = {json.dumps(settings.metrics_allow)}",
        f"token_file = {json.dumps(settings.metrics_token_file)}",
        "",
        "[health]",
        "# /readyz et caducee doctor : un envoi dû depuis ce délai (minutes) sans processus",
        "# d'envoi qui le prenne signale une file bloquée.",
        f"queue_stuck_minutes = {settings.health_queue_stuck_minutes}",
        "",
    ]
    return "\n".join(lines)
