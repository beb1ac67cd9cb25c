"""A local S3-compatible server for the tests: moto's standalone server (``moto[server]``), in a
thread of the test process, speaking the real S3 protocol over HTTP.

Clients reach it through a small TCP relay on its own port (:attr:`LocalS3.endpoint`), which
the tests cut to make the object store go away: :meth:`LocalS3.stop` closes the relay's
listening socket (new connections are refused) and every connection open through it (requests
under way fail, kept-alive connections are reset), as a provider's outage looks to a client.
moto's server itself keeps running: :meth:`LocalS3.start` listens again on the same port, and
every object stored before is there (moto keeps them in this process's memory).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from caducee.config import Settings

ACCESS_KEY_ID = "AKIACADUCEETEST00000"
SECRET_ACCESS_KEY = "caducee-test-secret-never-logged-0123456789"
REGION = "eu-west-3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """Bytes both ways between clients on ``port`` and the server on ``target``, until cut."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: same port
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._open = self._open, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class LocalS3:
    def __init__(self) -> None:
        self.port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        self._moto.start()
        self._relay = Relay(self.port, self._moto.get_host_and_port()[1])
        self.running = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Reachable (again), on the same port, with every object stored before."""
        self._relay.start()
        self.running = True

    def stop(self) -> None:
        """Gone: connections refused, those under way reset."""
        self._relay.cut()
        self.running = False

    def close(self) -> None:
        self.stop()
        self._moto.stop()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self._moto.get_host_and_port()[1]}",
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def create_bucket(self) -> str:
        name = f"caducee-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return name

    def keys(self, bucket: str) -> list[str]:
        found: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return found


@contextmanager
def local_s3() -> Iterator[LocalS3]:
    s3 = LocalS3()
    s3.start()
    try:
        yield s3
    finally:
        s3.close()


def use_s3(settings: Settings, s3: LocalS3, *, prefix: str = "", inline_max: int = 0) -> str:
    """Point ``settings`` at a new bucket of ``s3``; the bucket's name. ``inline_max`` 0 by
    default: every blob is an object (the tests look at the bucket)."""
    bucket = s3.create_bucket()
    settings.blob_store = "s3"
    settings.blob_inline_max = inline_max
    settings.s3_endpoint = s3.endpoint
    settings.s3_bucket = bucket
    settings.s3_region = REGION
    settings.s3_prefix = prefix
    settings.s3_access_key_id = ACCESS_KEY_ID
    settings.s3_secret_access_key = SECRET_ACCESS_KEY
    return bucket
