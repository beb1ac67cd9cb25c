"""The S3 blob store (``blob_store = "s3"``): past one database's disk, the large blobs are
objects of an S3-compatible bucket (what France's certified health-data hosts offer).

Same protocol as :class:`~caducee.store.blobs.FileBlobStore` (see that module): blobs up to
``inline_max`` are rows of the ``blobs`` table written in the caller's transaction; larger ones
are uploaded by :meth:`S3BlobStore.stage` before the transaction that names them commits (an
S3 ``PutObject`` is durable when it answers 200), read back with ``GetObject`` and deleted with
``DeleteObjects`` after the transaction that forgot them. Every blob is already sealed by the
caller (AES-256-GCM under the mailbox's data key): the provider only ever holds ciphertext.

Object keys are ``<prefix>ab/cd/<blob id>``, the layout of the blob files (a bucket and a
``blobs/`` directory copy into each other with any S3 tool). A blob id is 128 random bits
(:func:`caducee.ids.new_blob_id`), drawn before sealing: nothing about a message's content can
be learnt, or probed, from its key.

When the object store cannot be reached, nothing is acknowledged: staging and reading raise
:class:`~caducee.errors.StorageUnavailable` (SMTP ``451 4.3.0``, IMAP ``NO [UNAVAILABLE]``). A
failed deletion is logged and leaves orphan objects, which :meth:`S3BlobStore.sweep_orphans`
removes later (objects older than a grace period that no row names).

Backups (``store/backup.py``) copy the objects into the archive. While one runs, deletions are
held, as :func:`caducee.store.blobs.hold_removals` holds file removals, but across every node
sharing the bucket: the backup writes the object ``<prefix>.caducee/backup-hold``; a removal
that finds it writes ``<prefix>.caducee/deferred/<id>`` markers instead, and the backup deletes
those blobs when it is done. A removal that did not see the hold concerns rows deleted before
the hold was written, hence before the backup's snapshot (S3 reads are strongly consistent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, Any, cast

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import get_session as get_sync_session
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.config import Settings
from caducee.errors import StorageUnavailable
from caducee.store import blob_refs_repo
from caducee.store.blobs import (
    INLINE_MAX_BYTES,
    Blob,
    _check_id,
    _forget_rows,
    _insert,
    _insert_sync,
    _missing,
    _rows,
)
from caducee.store.database import Database

log = logging.getLogger(__name__)

_KEY = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})$")
#: Under the prefix: the backup's hold and the removals it deferred (never a blob's key).
HOLD_KEY = ".caducee/backup-hold"
DEFERRED_PREFIX = ".caducee/deferred/"
#: Concurrent requests of one call (uploads of a delivery group, reads of a FETCH).
PARALLEL = 16
#: A connection refused or reset is retried this many times in all (botocore "standard"
#: mode, with jittered back-off): a short glitch is absorbed, an outage answers in seconds.
ATTEMPTS = 3
#: An object younger than this may belong to a delivery whose transaction is under way: the
#: orphan sweep leaves it (a delivery's upload and commit take seconds; SMTP's DATA timeout is
#: ten minutes).
ORPHAN_GRACE = timedelta(hours=6)
_ERRORS = (BotoCoreError, ClientError, OSError, asyncio.TimeoutError)


def object_key(prefix: str, blob_id: str) -> str:
    _check_id(blob_id)
    return f"{prefix}{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"


def blob_id_of(prefix: str, key: str) -> str | None:
    """The blob id an object key names, or None (markers, foreign objects)."""
    if not key.startswith(prefix):
        return None
    found = _KEY.match(key[len(prefix) :])
    if found is None or not found.group(3).startswith(found.group(1) + found.group(2)):
        return None
    return found.group(3)


def _client_args(settings: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {"region_name": settings.s3_region or None}
    if settings.s3_endpoint:
        args["endpoint_url"] = settings.s3_endpoint
    if settings.s3_access_key_id:
        args["aws_access_key_id"] = settings.s3_access_key_id
        args["aws_secret_access_key"] = settings.s3_secret_access_key
    return args


def _config_args() -> dict[str, Any]:
    return {
        "connect_timeout": 5,
        "read_timeout": 60,
        "retries": {"max_attempts": ATTEMPTS, "mode": "standard"},
        "s3": {"addressing_style": "path"},  # works with every provider and a local server
        "max_pool_connections": 32,
    }


def quiet_sdk_logs() -> None:
    """The SDK's debug logs print every request's headers (the access key id, signatures):
    never below INFO, whatever the root logger's level."""
    for name in ("botocore", "aiobotocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # NOTSET (0) included: it would inherit DEBUG
            logger.setLevel(logging.INFO)


def _code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _unavailable(error: BaseException, what: str) -> StorageUnavailable:
    # the error's type and S3 code only: never the credentials or the request
    log.warning("s3 %s failed error=%s code=%s", what, type(error).__name__, _code(error))
    return StorageUnavailable(
        "Le stockage des messages est momentanément injoignable, réessayez plus tard.",
        "Message storage is unreachable for now, try again later.",
    )


class S3BlobStore:
    def __init__(self, settings: Settings, inline_max: int = INLINE_MAX_BYTES) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.inline_max = inline_max
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        quiet_sdk_logs()

    async def client(self) -> Any:
        """The node's aiobotocore client, opened on first use (on the running loop)."""
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    session = get_session()
                    self._client = await self._stack.enter_async_context(
                        session.create_client(
                            "s3", config=AioConfig(**_config_args()), **_client_args(self.settings)
                        )
                    )
        return self._client

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    def key(self, blob_id: str) -> str:
        return object_key(self.prefix, blob_id)

    # --- the blob store protocol (store/blobs.py) ------------------------------------------

    async def stage(self, items: Sequence[Blob]) -> None:
        """Upload the large blobs, several at once; every upload ends before a failure is
        raised (the caller then removes what was staged)."""
        large = [item for item in items if len(item[1]) > self.inline_max]
        if not large:
            return
        client = await self.client()
        gate = asyncio.Semaphore(PARALLEL)

        async def put(blob_id: str, data: bytes) -> None:
            async with gate:
                await client.put_object(Bucket=self.bucket, Key=self.key(blob_id), Body=data)

        outcomes = await asyncio.gather(*(put(b, d) for b, d in large), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, _ERRORS):
                raise _unavailable(outcome, "upload") from None
            if isinstance(outcome, BaseException):
                raise outcome

    async def record(self, conn: AsyncConnection, items: Sequence[Blob]) -> None:
        await _insert(conn, [item for item in items if len(item[1]) <= self.inline_max])

    def record_sync(self, conn: Connection, items: Sequence[Blob]) -> None:
        _insert_sync(conn, [item for item in items if len(item[1]) <= self.inline_max])

    async def forget(self, conn: AsyncConnection, blob_ids: Iterable[str]) -> None:
        await _forget_rows(conn, blob_ids)

    async def remove_files(self, blob_ids: Iterable[str]) -> None:
        """Delete the objects (absent ones, e.g. inline blobs, are no error), or, while a
        backup holds removals, write down their ids for it. A failure is logged and leaves
        orphans for :meth:`sweep_orphans`: the rows are gone already, nothing to undo."""
        keys = [self.key(blob_id) for blob_id in blob_ids]
        if not keys:
            return
        try:
            client = await self.client()
            if await self._held(client):
                for key in keys:
                    marker = self.prefix + DEFERRED_PREFIX + key.rsplit("/", 1)[1]
                    await client.put_object(Bucket=self.bucket, Key=marker, Body=b"")
                return
            await self._delete(client, keys)
        except _ERRORS as error:
            log.warning(
                "s3 removal failed, %d orphan object(s) left error=%s code=%s",
                len(keys),
                type(error).__name__,
                _code(error),
            )

    async def get(self, conn: AsyncConnection, blob_id: str) -> bytes:
        found = await self.get_many(conn, [blob_id])
        if blob_id not in found:
            raise _missing(blob_id)
        return found[blob_id]

    async def get_many(self, conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]:
        """The database's in one query, the others from the bucket (several at once); missing
        ones are left out."""
        found = await _rows(conn, blob_ids)
        wanted = [b for b in blob_ids if b not in found]
        if not wanted:
            return found
        client = await self.client()
        gate = asyncio.Semaphore(PARALLEL)

        async def fetch(blob_id: str) -> tuple[str, bytes | None]:
            async with gate:
                try:
                    answer = await client.get_object(Bucket=self.bucket, Key=self.key(blob_id))
                except ClientError as error:
                    if _code(error) in ("NoSuchKey", "404"):
                        return blob_id, None
                    raise
                async with answer["Body"] as body:
                    return blob_id, bytes(await body.read())

        # every read ends before a failure is raised (none is left running unobserved)
        outcomes = await asyncio.gather(*(fetch(b) for b in wanted), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, _ERRORS):
                raise _unavailable(outcome, "read") from None
            if isinstance(outcome, BaseException):
                raise outcome
            blob_id, data = outcome
            if data is not None:
                found[blob_id] = data
        return found

    # --- maintenance ----------------------------------------------------------------------

    async def _held(self, client: Any) -> bool:
        try:
            await client.head_object(Bucket=self.bucket, Key=self.prefix + HOLD_KEY)
        except ClientError as error:
            if _code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def _delete(self, client: Any, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
            chunk = keys[start : start + 1000]
            answer = await client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )
            if answer.get("Errors"):
                log.warning("s3 removal: %d object(s) not deleted", len(answer["Errors"]))

    async def check(self) -> datetime | None:
        """Raise :class:`StorageUnavailable` unless the bucket answers (``HeadBucket``); when
        a backup holds removals, since when (a hold a day old is a backup that crashed)."""
        try:
            client = await self.client()
            await client.head_bucket(Bucket=self.bucket)
            hold = await client.head_object(Bucket=self.bucket, Key=self.prefix + HOLD_KEY)
        except ClientError as error:
            if _code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _unavailable(error, "check") from None
        except _ERRORS as error:
            raise _unavailable(error, "check") from None
        return cast(datetime, hold["LastModified"])

    async def sweep_orphans(self, db: Database, older_than: timedelta) -> int:
        """Delete the objects no row names that are older than ``older_than`` (uploads of
        deliveries that never committed, removals that failed); how many. The grace period
        must exceed the longest delivery (upload to commit): a younger object may still be
        named by a transaction under way. Nothing is done while a backup holds removals."""
        client = await self.client()
        if await self._held(client):
            return 0
        limit = datetime.now(UTC) - older_than
        candidates: dict[str, str] = {}
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                blob_id = blob_id_of(self.prefix, str(item["Key"]))
                if blob_id is not None and item["LastModified"] < limit:
                    candidates[blob_id] = str(item["Key"])
        if not candidates:
            return 0
        async with db.read() as conn:
            named = await blob_refs_repo.named_blob_ids(conn, list(candidates))
        orphans = [key for blob_id, key in candidates.items() if blob_id not in named]
        if orphans:
            await self._delete(client, orphans)
        return len(orphans)


# --- blocking access, for backups (run in the command line or a worker thread) -------------


def sync_client(settings: Settings) -> Any:
    """A botocore (blocking) client for the configured bucket."""
    quiet_sdk_logs()
    return get_sync_session().create_client(
        "s3", config=Config(**_config_args()), **_client_args(settings)
    )


def object_blob_ids(client: Any, settings: Settings) -> Iterator[str]:
    """Every blob id of the bucket (under the prefix), in key order."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=settings.s3_bucket, Prefix=settings.s3_prefix):
        for item in page.get("Contents", []):
            blob_id = blob_id_of(settings.s3_prefix, str(item["Key"]))
            if blob_id is not None:
                yield blob_id


@contextlib.contextmanager
def hold_removals(settings: Settings) -> Iterator[Any]:
    """While inside: no node deletes an object of the bucket (removals are deferred, see the
    module's docstring); on the way out, the deferred ones are deleted. Yields the client."""
    client = sync_client(settings)
    bucket, prefix = settings.s3_bucket, settings.s3_prefix
    client.put_object(Bucket=bucket, Key=prefix + HOLD_KEY, Body=b"")
    try:
        yield client
    finally:
        client.delete_object(Bucket=bucket, Key=prefix + HOLD_KEY)
        remove_deferred(client, settings)
        client.close()


def remove_deferred(client: Any, settings: Settings) -> int:
    """Delete the blobs whose removal a backup deferred, and their markers; how many."""
    bucket, prefix = settings.s3_bucket, settings.s3_prefix
    markers: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix + DEFERRED_PREFIX):
        markers.extend(str(item["Key"]) for item in page.get("Contents", []))
    keys: list[str] = []
    for marker in markers:
        blob_id = marker.rsplit("/", 1)[1]
        with contextlib.suppress(Exception):
            keys.append(object_key(prefix, blob_id))
        keys.append(marker)
    for start in range(0, len(keys), 1000):
        client.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
        )
    return len(markers)


@contextlib.contextmanager
def open_object(client: Any, settings: Settings, blob_id: str) -> Iterator[IO[bytes] | None]:
    """One blob's sealed bytes as a stream (None when it is gone)."""
    try:
        answer = client.get_object(
            Bucket=settings.s3_bucket, Key=object_key(settings.s3_prefix, blob_id)
        )
    except ClientError as error:
        if _code(error) in ("NoSuchKey", "404"):
            yield None
            return
        raise
    body = answer["Body"]
    try:
        yield body
    finally:
        body.close()
