"""Backup archives of a node, written while it runs: the database snapshot, the blob files,
the keys and the configuration, each encrypted for the backup key (``store/backup_crypto.py``),
listed with their checksums in an authenticated manifest.

Everything here is blocking work (copying, hashing, encrypting, ``pg_dump``): callers run it in
the command-line process or in a worker thread, never on the event loop.

Consistency: the database snapshot is taken first, in one transaction (SQLite's online backup
API, or ``pg_dump`` on a snapshot exported by a REPEATABLE READ transaction, which also gives
the counts of the manifest); then the blob files are copied. Blobs written after the snapshot
began are copied or not (harmless: no row of the snapshot names them). Blob files are not
removed while the backup runs (:func:`caducee.store.blobs.hold_removals`), so every blob the
snapshot names is still there when it is copied.

On the S3 blob store (``blob_store = "s3"``) the objects are copied into the archive the same
way, under the same names: the archive is self-sufficient, whatever the provider keeps. Their
deletion is held meanwhile on every node sharing the bucket
(:func:`caducee.store.s3_blobs.hold_removals`). A restore writes them as blob files and sets
``blob_store = "files"``: the restored node never writes into, or deletes from, the bucket of
the installation it was copied from (``docs/operations.md`` says how to move it back to S3).

Layout of an archive directory ``caducee-YYYYMMDDTHHMMSSZ/``::

    manifest.json                 the manifest and its HMAC
    database/db.sqlite3.enc       or database/db.pgdump.enc (pg_dump's custom format)
    blobs/ab/cd/<id>.enc          the blob files (already sealed under the data keys)
    keys/…enc, tls/…enc           the data dir's keys (master key) and TLS files
    caducee.toml.enc              the configuration

It is written under a ``.partial`` name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from caducee.config import CONFIG_NAME, Settings
from caducee.errors import ConfigurationError, IntegrityError, InvalidInput
from caducee.store import blobs as blob_files
from caducee.store.backup_crypto import (
    BackupPrivateKey,
    BackupPublicKey,
    check_manifest,
    damaged,
    decrypt_stream,
    encrypt_stream,
    parse_public_key,
    public_key_from_raw,
    seal_manifest,
)
from caducee.store.crypto import write_private_file

FORMAT = "caducee-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREFIX = "caducee-"
PUBLIC_KEY_NAME = "backup.pub"
LOCK_NAME = "backup.lock"
SQLITE_NAME = "database/db.sqlite3"
PGDUMP_NAME = "database/db.pgdump"
_COPY = 1024 * 1024


def public_key_path(settings: Settings) -> Path:
    return settings.keys_dir / PUBLIC_KEY_NAME


def load_public_key(settings: Settings) -> BackupPublicKey:
    path = public_key_path(settings)
    if not path.exists():
        raise ConfigurationError(
            f"Aucune clé de sauvegarde ({path}) : créez-la avec « caducee backup key create » "
            "et rangez la clé privée affichée hors de ce serveur.",
            f"No backup key ({path}): create it with 'caducee backup key create' and keep the "
            "private key it shows away from this server.",
        )
    return parse_public_key(path.read_text("ascii"))


def write_public_key(settings: Settings, key: BackupPublicKey) -> None:
    write_private_file(public_key_path(settings), key.encoded() + "\n")


@dataclass
class ArchiveReport:
    path: Path
    files: int
    bytes: int
    counts: dict[str, int]
    backend: str
    master_key_included: bool


@contextlib.contextmanager
def backup_lock(settings: Settings) -> Iterator[None]:
    """``run/backup.lock``: one backup of a data dir at a time (command line or schedule)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                "Une sauvegarde de ce répertoire de données est déjà en cours : attendez sa fin.",
                "A backup of this data directory is already running: wait for it to end.",
            ) from None
        yield
    finally:
        os.close(fd)


# --- PostgreSQL -----------------------------------------------------------------------------------


def find_pg_tool(name: str, configured: str = "") -> Path:
    """``pg_dump`` / ``pg_restore``: in ``[backup] pg_bin``, then $PG_BIN, Debian's newest
    version, the PATH."""
    candidates = [configured, os.environ.get("PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    found = shutil.which(name)
    if found:
        candidates.append(str(Path(found).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / name).exists():
            return Path(candidate) / name
    raise ConfigurationError(
        f"{name} introuvable : installez le paquet Debian « postgresql-client » ou indiquez "
        "son répertoire dans [backup] pg_bin.",
        f"{name} not found: install Debian's 'postgresql-client' or set [backup] pg_bin.",
    )


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy URL as a libpq URI without its password, and the environment carrying it
    (never on a command line, which ``ps`` shows)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_connect(url: str) -> Any:
    import psycopg

    conninfo, env = libpq(url)
    return psycopg.connect(conninfo, password=env.get("PGPASSWORD"))


def _pg_snapshot(
    settings: Settings, url: str, target: IO[bytes], public: BackupPublicKey
) -> tuple[int, str, dict[str, int], str]:
    """``pg_dump`` (custom format) of one snapshot, streamed into the encryption: no clear
    copy on disk. The counts and the schema revision are read in the same snapshot."""
    conn = _pg_connect(url)
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])
        revision = str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
        counts = {
            "messages": int(conn.execute("SELECT count(*) FROM messages").fetchone()[0]),
            "mailboxes": int(conn.execute("SELECT count(*) FROM mailboxes").fetchone()[0]),
        }
        conninfo, env = libpq(url)
        tool = find_pg_tool("pg_dump", settings.backup_pg_bin)
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(  # noqa: S603 - our tool, our arguments, no shell
                [
                    str(tool),
                    "--format=custom",
                    "--compress=1",  # COPY writes bytea in hex: level 1 halves it; 6 costs 10x
                    f"--snapshot={snapshot}",
                    "--dbname",
                    conninfo,
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
            assert proc.stdout is not None
            try:
                size, digest = encrypt_stream(proc.stdout, target, public, PGDUMP_NAME)
            finally:
                proc.stdout.close()
                code = proc.wait()
            if code != 0:
                errors.seek(0)
                detail = errors.read().decode("utf-8", "replace").strip()[-500:]
                raise ConfigurationError(
                    f"pg_dump a échoué ({code}) : {detail}", f"pg_dump failed ({code}): {detail}"
                )
        return size, digest, counts, revision
    finally:
        conn.rollback()
        conn.close()


def _sqlite_path(settings: Settings) -> Path:
    url = make_url(settings.effective_database_url)
    return Path(str(url.database))


def _sqlite_snapshot(settings: Settings, copy: Path) -> tuple[dict[str, int], str]:
    """SQLite's online backup API, all pages in one step: one read transaction, so the copy
    is a consistent snapshot while writers go on (WAL)."""
    source = sqlite3.connect(_sqlite_path(settings), timeout=30)
    try:
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
            counts = {
                "messages": int(target.execute("SELECT count(*) FROM messages").fetchone()[0]),
                "mailboxes": int(target.execute("SELECT count(*) FROM mailboxes").fetchone()[0]),
            }
            revision = str(target.execute("SELECT version_num FROM alembic_version").fetchone()[0])
        finally:
            target.close()
    finally:
        source.close()
    return counts, revision


# --- writing --------------------------------------------------------------------------------------


@dataclass
class _Writer:
    root: Path
    public: BackupPublicKey
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add_stream(self, name: str, kind: str, source: IO[bytes]) -> None:
        target = self.root / (name + ".enc")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            size, digest = encrypt_stream(source, out, self.public, name)
            out.flush()
            os.fsync(out.fileno())
        self.entries.append({"name": name, "kind": kind, "size": size, "sha256": digest})

    def add_file(self, name: str, kind: str, path: Path) -> bool:
        try:
            source = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return False
        with source:
            self.add_stream(name, kind, source)
        return True


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def _fsync_tree(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def create_archive(
    settings: Settings,
    dest_root: Path,
    *,
    caducee_version: str,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ArchiveReport:
    """Write a complete archive of the node in ``dest_root``; its report. ``progress(done,
    total)`` counts the database snapshot and each blob file as they are written."""
    public = load_public_key(settings)
    now = now or datetime.now(UTC)
    dest_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = dest_root / f"{PREFIX}{_stamp(now)}"
    if final.exists():
        raise ConfigurationError(
            f"L'archive {final} existe déjà.", f"Archive {final} already exists."
        )
    partial = dest_root / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    writer = _Writer(partial, public)
    backend = "sqlite" if settings.is_sqlite else "postgresql"
    on_s3 = settings.blob_store == "s3"
    if on_s3:
        from caducee.store import s3_blobs  # botocore: S3 nodes only
    try:
        with contextlib.ExitStack() as held:
            held.enter_context(backup_lock(settings))
            held.enter_context(blob_files.hold_removals(settings.blobs_dir))
            bucket = held.enter_context(s3_blobs.hold_removals(settings)) if on_s3 else None
            if settings.is_sqlite:
                settings.run_dir.mkdir(parents=True, exist_ok=True)
                copy = settings.run_dir / f"backup-{os.getpid()}.sqlite3"
                with contextlib.suppress(FileNotFoundError):
                    copy.unlink()
                try:
                    counts, revision = _sqlite_snapshot(settings, copy)
                    writer.add_file(SQLITE_NAME, "database", copy)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        copy.unlink()
            else:
                target = partial / (PGDUMP_NAME + ".enc")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    size, digest, counts, revision = _pg_snapshot(
                        settings, settings.effective_database_url, out, public
                    )
                    out.flush()
                    os.fsync(out.fileno())
                writer.entries.append(
                    {"name": PGDUMP_NAME, "kind": "database", "size": size, "sha256": digest}
                )
            # After the snapshot: every blob it names is here (removals are held).
            blobs = list(blob_files.blob_files(settings.blobs_dir))
            if progress is not None:
                progress(1, len(blobs) + 1)
            for done, path in enumerate(blobs, start=2):
                writer.add_file(f"blobs/{path.relative_to(settings.blobs_dir)}", "blob", path)
                if progress is not None:
                    progress(done, len(blobs) + 1)
            if bucket is not None:
                for blob_id in list(s3_blobs.object_blob_ids(bucket, settings)):
                    with s3_blobs.open_object(bucket, settings, blob_id) as source:
                        if source is not None:  # gone: deleted before the snapshot
                            name = f"blobs/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"
                            writer.add_stream(name, "blob", source)
        for base, kind in ((settings.keys_dir, "key"), (settings.tls_dir, "tls")):
            if base.is_dir():
                for path in sorted(p for p in base.rglob("*") if p.is_file()):
                    if path.name.endswith(".tmp"):
                        continue
                    name = f"{base.name}/{path.relative_to(base)}"
                    writer.add_file(name, kind, path)
        writer.add_file(CONFIG_NAME, "config", settings.config_path)
        master_included = any(e["name"] == "keys/master.key" for e in writer.entries)
        body = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": now.isoformat(),
            "caducee_version": caducee_version,
            "schema_revision": revision,
            "backend": backend,
            "blob_store": settings.blob_store,
            "counts": counts,
            "master_key_included": master_included,
            "recipient": public.encoded().split(" ", 1)[1],
            "files": writer.entries,
        }
        canonical = _canonical(body)
        document = {"manifest": body, "seal": seal_manifest(canonical, public)}
        with open(partial / MANIFEST, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        _fsync_tree(partial)
        os.rename(partial, final)
        fd = os.open(dest_root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ArchiveReport(
        path=final,
        files=len(writer.entries),
        bytes=sum(int(e["size"]) for e in writer.entries),
        counts=counts,
        backend=backend,
        master_key_included=master_included,
    )


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def archives(root: Path) -> list[Path]:
    """The complete archives in ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MANIFEST).is_file()
    )


def rotate(root: Path, keep: int) -> list[Path]:
    """Remove the oldest archives beyond the ``keep`` newest; what was removed."""
    found = archives(root)
    removed = found[: max(0, len(found) - max(1, keep))]
    for path in removed:
        shutil.rmtree(path)
    return removed


# --- reading --------------------------------------------------------------------------------------


@dataclass
class Manifest:
    path: Path
    body: dict[str, Any]
    canonical: bytes
    seal: dict[str, str]

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.body["files"])


def find_archive(path: Path) -> Path:
    """``path`` itself if it is an archive, else the newest archive in it."""
    if (path / MANIFEST).is_file():
        return path
    found = archives(path)
    if found:
        return found[-1]
    if path.is_dir() and path.name.startswith(PREFIX):
        raise damaged(MANIFEST, "fichier manquant", "file missing")
    raise InvalidInput(
        f"Aucune archive de sauvegarde dans {path}.", f"No backup archive in {path}."
    )


def _safe_name(name: str) -> str:
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or not parts:
        raise damaged(MANIFEST, f"nom de fichier refusé {name!r}", f"refused file name {name!r}")
    return name


def read_manifest(archive: Path) -> Manifest:
    try:
        document = json.loads((archive / MANIFEST).read_text("utf-8"))
        body = document["manifest"]
        seal = document["seal"]
        if body["format"] != FORMAT:
            raise ValueError("format")
        for entry in body["files"]:
            _safe_name(str(entry["name"]))
            int(entry["size"])
            str(entry["sha256"])
    except FileNotFoundError:
        raise damaged(MANIFEST, "fichier manquant", "file missing") from None
    except (ValueError, KeyError, TypeError):
        raise damaged(MANIFEST, "illisible ou incomplet", "unreadable or incomplete") from None
    if int(body["version"]) != FORMAT_VERSION:
        raise damaged(MANIFEST, f"version {body['version']} inconnue", "unknown version")
    return Manifest(archive, body, _canonical(body), seal)


def authenticate(manifest: Manifest, key: BackupPrivateKey) -> None:
    """A wrong key and a tampered manifest, each with its own message."""
    recipient = public_key_from_raw(str(manifest.body.get("recipient", "")))
    if recipient.raw != key.public.raw:
        raise IntegrityError(
            "Mauvaise clé de sauvegarde : cette archive a été chiffrée pour la clé "
            f"{recipient.fingerprint}, la clé fournie est {key.public.fingerprint}.",
            f"Wrong backup key: this archive was encrypted for key {recipient.fingerprint}, "
            f"the key given is {key.public.fingerprint}.",
        )
    if not check_manifest(manifest.canonical, manifest.seal, key):
        raise damaged(
            MANIFEST,
            "authentification échouée : le manifeste a été modifié",
            "authentication failed: the manifest was modified",
        )


def check_checksums(manifest: Manifest) -> int:
    """Every listed file is present with its size and SHA-256; the bytes checked."""
    total = 0
    for entry in manifest.files:
        name = str(entry["name"])
        path = manifest.path / (name + ".enc")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise damaged(name, "fichier manquant", "file missing") from None
        if size != int(entry["size"]):
            raise damaged(
                name,
                f"taille {size} au lieu de {entry['size']} (tronqué ?)",
                f"size {size} instead of {entry['size']} (truncated?)",
            )
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            while block := source.read(_COPY):
                digest.update(block)
        if digest.hexdigest() != entry["sha256"]:
            raise damaged(name, "somme de contrôle fausse", "bad checksum")
        total += size
    return total


def decrypt_all(manifest: Manifest, key: BackupPrivateKey) -> int:
    """Decrypt every file to nowhere, checking the authentication and the checksums."""
    total = 0
    for entry in manifest.files:
        name = str(entry["name"])
        try:
            source = open(manifest.path / (name + ".enc"), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise damaged(name, "fichier manquant", "file missing") from None
        with source:
            size, digest = decrypt_stream(source, None, key, name)
        if size != int(entry["size"]) or digest != entry["sha256"]:
            raise damaged(name, "somme de contrôle fausse", "bad checksum")
        total += size
    return total


# --- restoring ------------------------------------------------------------------------------------


def _check_new_dir(new_dir: Path) -> None:
    if new_dir.exists() and (not new_dir.is_dir() or any(new_dir.iterdir())):
        raise InvalidInput(
            f"{new_dir} existe et n'est pas un répertoire vide : la restauration se fait dans "
            "un répertoire neuf.",
            f"{new_dir} exists and is not an empty directory: restore into a new directory.",
        )


def _check_empty_database(url: str) -> None:
    conn = _pg_connect(url)
    try:
        tables = int(
            conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                "('pg_catalog', 'information_schema')"
            ).fetchone()[0]
        )
    finally:
        conn.close()
    if tables:
        raise InvalidInput(
            "La base PostgreSQL de destination n'est pas vide : restaurez dans une base neuve "
            "(CREATE DATABASE …).",
            "The target PostgreSQL database is not empty: restore into a new database "
            "(CREATE DATABASE …).",
        )


def _set_database_url(config: Path, url: str) -> None:
    _set_top_level(config, "database_url", url)


def _set_top_level(config: Path, name: str, value: str) -> None:
    """Set a top-level setting of ``caducee.toml`` (before any ``[section]``)."""
    lines = config.read_text("utf-8").splitlines() if config.exists() else []
    entry = f"{name} = {json.dumps(value)}"
    for i, line in enumerate(lines):
        if line.startswith("["):
            break
        if line.replace(" ", "").startswith(f"{name}="):
            lines[i] = entry
            break
    else:
        lines.insert(0, entry)
    config.write_text("\n".join(lines) + "\n", "utf-8")


def _declare_single_node(config: Path) -> None:
    """``[cluster] single_node = true``: a node restored from an S3 archive on PostgreSQL keeps
    its blobs as files, which only a declared single node may (``services.cluster``); moving
    them back to a shared store is the operator's step (docs/operations.md)."""
    text = config.read_text("utf-8") if config.exists() else ""
    if re.search(r"^single_node\s*=", text, re.M):
        text = re.sub(r"^single_node\s*=.*$", "single_node = true", text, flags=re.M)
    else:
        text = text.rstrip("\n") + "\n\n[cluster]\nsingle_node = true\n"
    config.write_text(text, "utf-8")


@dataclass
class RestoreReport:
    path: Path
    files: int
    counts: dict[str, int]
    backend: str
    database_url: str


def restore_archive(
    archive: Path,
    new_dir: Path,
    key: BackupPrivateKey,
    *,
    database_url: str = "",
    pg_bin: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> RestoreReport:
    """Restore ``archive`` into ``new_dir`` (absent or empty), all or nothing.

    Before anything is written: the manifest is authenticated with the key, every file's size
    and checksum checked. Files are decrypted into a temporary directory beside ``new_dir``,
    renamed to it at the end; PostgreSQL's dump is restored by ``pg_restore`` in one
    transaction into the empty database at ``database_url``.
    """
    manifest = read_manifest(archive)
    authenticate(manifest, key)
    backend = str(manifest.body["backend"])
    if backend == "postgresql" and not database_url:
        raise InvalidInput(
            "Cette archive vient d'une base PostgreSQL : indiquez la base neuve où la restaurer "
            "avec --database-url.",
            "This archive comes from a PostgreSQL database: give the new database to restore "
            "into with --database-url.",
        )
    if backend == "sqlite" and database_url:
        raise InvalidInput(
            "Cette archive vient d'une base SQLite : --database-url ne s'applique pas.",
            "This archive comes from a SQLite database: --database-url does not apply.",
        )
    new_dir = new_dir.resolve()
    _check_new_dir(new_dir)
    check_checksums(manifest)
    if database_url:
        _check_empty_database(database_url)
    new_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{new_dir.name}.restore-", dir=new_dir.parent))
    try:
        os.chmod(work, 0o700)
        dump: dict[str, Any] | None = None
        for done, entry in enumerate(manifest.files):
            if progress is not None:  # PostgreSQL's dump, restored last, counts as the last
                progress(done, len(manifest.files))
            name = str(entry["name"])
            if name == PGDUMP_NAME:
                dump = entry
                continue
            target = work / ("db.sqlite3" if name == SQLITE_NAME else name)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(manifest.path / (name + ".enc"), "rb") as source, os.fdopen(fd, "wb") as out:
                decrypt_stream(source, out, key, name)
                out.flush()
                os.fsync(out.fileno())
        if database_url:
            _set_database_url(work / CONFIG_NAME, database_url)
        if manifest.body.get("blob_store") == "s3":  # the objects came back as files
            _set_top_level(work / CONFIG_NAME, "blob_store", "files")
            if dump is not None:  # PostgreSQL with files: this restored node serves alone
                _declare_single_node(work / CONFIG_NAME)
        if dump is not None:
            _pg_restore(manifest, key, database_url, pg_bin)
        if progress is not None:
            progress(len(manifest.files), len(manifest.files))
        _fsync_tree(work)
        if new_dir.exists():
            new_dir.rmdir()  # empty (checked above)
        os.rename(work, new_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return RestoreReport(
        path=new_dir,
        files=len(manifest.files),
        counts=dict(manifest.body.get("counts", {})),
        backend=backend,
        database_url=database_url,
    )


def _pg_restore(manifest: Manifest, key: BackupPrivateKey, url: str, pg_bin: str) -> None:
    """``pg_restore`` fed the decrypted dump on its standard input, in one transaction: a
    failure leaves the database empty."""
    conninfo, env = libpq(url)
    tool = find_pg_tool("pg_restore", pg_bin)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # noqa: S603 - our tool, our arguments, no shell
            [
                str(tool),
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                "--dbname",
                conninfo,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )
        assert proc.stdin is not None
        try:
            with open(manifest.path / (PGDUMP_NAME + ".enc"), "rb") as source:
                decrypt_stream(source, proc.stdin, key, PGDUMP_NAME)
            proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            detail = errors.read().decode("utf-8", "replace").strip()[-500:]
            raise ConfigurationError(
                f"pg_restore a échoué ({code}) : {detail}", f"pg_restore failed ({code}): {detail}"
            )
