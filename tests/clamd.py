"""A real ClamAV daemon for the tests (Debian's ``clamav-daemon``), with a signature database
the test writes itself — nothing is downloaded:

- ``Caducee.Test.Marker``: a body signature (``.ndb``) matching :data:`MARKER` anywhere, so a
  message, an attachment, a ZIP member or a nested message carrying it is found;
- ``Caducee.Test.File``: a hash signature (``.hdb``, MD5 and size) of :data:`HASHED_FILE`.

Without clamd the tests are skipped loudly; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

MARKER = b"CADUCEE-TEST-VIRUS-MARKER-7f3a9c"
HASHED_FILE = b"%PDF-1.4\n% un fichier malveillant connu par son empreinte\n%%EOF\n"
MARKER_SIGNATURE = "Caducee.Test.Marker.UNOFFICIAL"
FILE_SIGNATURE = "Caducee.Test.File.UNOFFICIAL"


def find_clamd() -> str | None:
    for candidate in (shutil.which("clamd"), "/usr/sbin/clamd"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class Clamd:
    address: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_clamd(
    directory: Path,
    extra_databases: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
) -> Clamd:
    """clamd on a Unix socket in ``directory``, with the test signatures and, for benchmarks,
    ``extra_databases`` (file name → content: more signature files in its database, which
    takes longer to load: ``start_timeout``)."""
    binary = find_clamd()
    if binary is None:
        message = "clamd introuvable (paquet clamav-daemon) : tests antivirus non exécutés"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    database = directory / "db"
    database.mkdir(parents=True)
    (database / "caducee.ndb").write_text(f"Caducee.Test.Marker:0:*:{MARKER.hex()}\n")
    digest = hashlib.md5(HASHED_FILE).hexdigest()
    (database / "caducee.hdb").write_text(f"{digest}:{len(HASHED_FILE)}:Caducee.Test.File\n")
    for name, content in (extra_databases or {}).items():
        (database / name).write_text(content)
    socket_path = directory / "clamd.sock"
    config = [
        f"LocalSocket {socket_path}",
        f"DatabaseDirectory {database}",
        "Foreground yes",
        f"LogFile {directory / 'clamd.log'}",
        f"TemporaryDirectory {directory}",
        "StreamMaxLength 40M",
        "ScanArchive yes",
        "ScanMail yes",
    ]
    if os.geteuid() == 0:
        config.append("User root")
    (directory / "clamd.conf").write_text("\n".join(config) + "\n")
    process = subprocess.Popen(
        [binary, "-c", str(directory / "clamd.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + start_timeout
    while not socket_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            log = (directory / "clamd.log").read_text(errors="replace")[-2000:]
            process.kill()
            raise RuntimeError(f"clamd did not start: {log}")
        time.sleep(0.05)
    return Clamd(f"unix:{socket_path}", process, directory)


@pytest.fixture(scope="module")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    """One clamd per test module (it starts in a fraction of a second with this database)."""
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    try:
        yield server
    finally:
        server.stop()
