"""Settings: ``<data dir>/caducee.toml``, overridden by ``CADUCEE_*`` environment variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caducee.errors import ConfigurationError

DEFAULT_DATA_DIR = Path("var/caducee")
CONFIG_NAME = "caducee.toml"

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


@dataclass
class Settings:
    """Everything that configures one node. Paths are absolute."""

    data_dir: Path
    hostname: str = "localhost"
    database_url: str = ""
    blob_store: str = "files"  # "files" (data dir) or "database" (blobs table, multi-node)
    listeners: dict[str, str] = field(default_factory=dict)
    audit_retention_days: int = 183
    lockout_threshold: int = 5
    lockout_base_seconds: int = 30
    lockout_max_seconds: int = 3600
    default_quota_bytes: int = 5 * 1024**3

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
        settings.listeners = {str(k): str(v) for k, v in doc.get("listeners", {}).items()}
        audit = doc.get("audit", {})
        settings.audit_retention_days = _int(
            audit.get("retention_days", settings.audit_retention_days), "audit.retention_days"
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
    env = os.environ
    settings.hostname = env.get("CADUCEE_HOSTNAME", settings.hostname)
    settings.database_url = env.get("CADUCEE_DATABASE_URL", settings.database_url)
    settings.blob_store = env.get("CADUCEE_BLOB_STORE", settings.blob_store)
    if "CADUCEE_AUDIT_RETENTION_DAYS" in env:
        settings.audit_retention_days = _int(
            env["CADUCEE_AUDIT_RETENTION_DAYS"], "CADUCEE_AUDIT_RETENTION_DAYS"
        )
    for name in PRODUCTION_LISTENERS:
        override = env.get(f"CADUCEE_LISTEN_{name.upper()}")
        if override:
            settings.listeners[name] = override
    if settings.blob_store not in ("files", "database"):
        raise ConfigurationError(
            f"blob_store doit valoir « files » ou « database », pas {settings.blob_store!r}.",
            f"blob_store must be 'files' or 'database', not {settings.blob_store!r}.",
        )
    return settings


def render_config(settings: Settings) -> str:
    """The TOML text of ``settings`` as ``caducee init`` writes it."""
    lines = [
        "# Configuration de Caducée. Chaque valeur peut être remplacée par une variable",
        "# d'environnement CADUCEE_* (voir docs/operations.md).",
        f'hostname = "{settings.hostname}"',
        "# Vide : SQLite dans le répertoire de données. PostgreSQL :",
        '# database_url = "postgresql+psycopg://caducee@/caducee?host=/run/postgresql"',
        f'database_url = "{settings.database_url}"',
        '# "files" (répertoire de données) ou "database" (table, pour plusieurs nœuds)',
        f'blob_store = "{settings.blob_store}"',
        "",
        "[listeners]",
    ]
    lines += [f'{name} = "{addr}"' for name, addr in settings.listeners.items()]
    lines += [
        "",
        "[audit]",
        f"retention_days = {settings.audit_retention_days}",
        "",
        "[security]",
        f"lockout_threshold = {settings.lockout_threshold}",
        f"lockout_base_seconds = {settings.lockout_base_seconds}",
        f"lockout_max_seconds = {settings.lockout_max_seconds}",
        "",
        "[mail]",
        f"default_quota_bytes = {settings.default_quota_bytes}",
        "",
    ]
    return "\n".join(lines)
