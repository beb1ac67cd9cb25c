"""The node's Prometheus metrics (issue 21): the counters and histograms, and their exposition.

Each fact is counted in one place, the service or flow every door calls: a message received by
the MX in ``flows.inbound``, a submission from SMTP, the webmail or the API in
``flows.submission``, an outbound delivery's result in ``flows.outbound``, a login failure or a
lock-out in ``services.lockout``, a pickup code in ``health.pickup_auth``, a session in
``protocols.tcp`` (the accept loop every line-based door shares), a web page's time in
``web.middleware``. No label ever carries an address, a login or content: doors, reasons (an
error's class name), results, listener names and route templates only — :func:`label` cuts
anything else to ``other``.

**Several worker processes per node.** ``caducee serve`` (one process, or the supervisor of
several) empties ``<data dir>/run/metrics`` at start and every worker process writes its
values there through prometheus-client's multiprocess mode (:func:`use_directory`): a scrape,
whichever worker answers it, sums the counters and histograms of every worker (those of a
worker that died stay counted, so a counter never goes back), and the open sessions of the
live workers only (``livesum``; the supervisor drops a dead worker's with
:func:`process_gone`). What the database knows (the queue's depth and oldest age, the lots
awaiting their ARL) is read at scrape time, by ``flows.node_state.gauges``: it is the same for
every worker and node. A process that never called :func:`use_directory` (a test's app, a
command) counts in its own memory.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from caducee.app import App
from caducee.config import Settings
from caducee.services import bounded_cache, memory_trim
from caducee.services.periodic import repeat

#: The environment variable prometheus-client's multiprocess mode reads.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The Content-Type of the text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Every metric of ours, registered here (never in prometheus-client's global registry).
REGISTRY = CollectorRegistry(auto_describe=True)

#: The doors a message arrives by (label ``door``).
DOORS = frozenset({"mx", "submission", "webmail", "api"})
#: What a login failure is counted under (label ``service``): the lockout's ``service``.
SERVICES = frozenset({"imap", "pop3", "smtp", "web", "api", "sasl"})

MESSAGES_RECEIVED = Counter(
    "caducee_messages_received",
    "Messages accepted by the MX (stored for local mailboxes).",
    ["door"],
    registry=REGISTRY,
)
MESSAGES_SENT = Counter(
    "caducee_messages_sent",
    "Messages accepted from a sender (SMTP submission, webmail, API).",
    ["door"],
    registry=REGISTRY,
)
MESSAGES_REFUSED = Counter(
    "caducee_messages_refused",
    "Messages (or recipients) refused, by door and reason (the refusal's class).",
    ["door", "reason"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "caducee_deliveries",
    "Outbound delivery attempts by result: delivered, deferred, bounced, expired.",
    ["result"],
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "caducee_delivery_seconds",
    "From queueing to the final result of an outbound recipient (delivered, bounced, expired).",
    ["result"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600),
    registry=REGISTRY,
)
SESSIONS_OPEN = Gauge(
    "caducee_sessions_open",
    "IMAP, POP3 and SMTP sessions open now, by listener.",
    ["listener"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CACHE_BYTES = Gauge(
    "caducee_cache_bytes",
    "Memory held by a worker process's bounded caches (as weighed by each), by cache; "
    "refreshed every few seconds.",
    ["cache"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
ALLOCATOR_BYTES = Gauge(
    "caducee_allocator_bytes",
    "What the C allocator holds in a worker process: in_use (allocated) and free (kept in its "
    "arenas, not yet given back to the system); refreshed every few seconds.",
    ["kind"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
SESSIONS = Counter(
    "caducee_sessions",
    "IMAP, POP3 and SMTP sessions accepted, by listener.",
    ["listener"],
    registry=REGISTRY,
)
LOGIN_FAILURES = Counter(
    "caducee_login_failures",
    "Wrong secrets (password, app password, second factor), by service.",
    ["service"],
    registry=REGISTRY,
)
LOCKOUTS = Counter(
    "caducee_lockouts",
    "Lock-outs started, by what is locked: an account or a client address.",
    ["scope"],
    registry=REGISTRY,
)
PICKUP_CODES = Counter(
    "caducee_pickup_codes",
    "Patient portal codes: sent by SMS, not sent (SMS failure), entered wrong.",
    ["result"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "caducee_http_request_seconds",
    "Time to answer a web request, by route template (never the path), method and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

_directory: Path | None = None


def label(value: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``other``: a label never carries free text."""
    return value if value in frozenset(allowed) else "other"


def reason_of(error: BaseException) -> str:
    """A refusal's reason label: its class name (``PolicyRejected``, ``NotFound``…)."""
    return type(error).__name__


def may_read(settings: Settings, client_ip: str, authorization: str) -> bool:
    """Whether a client may read ``/metrics`` and ``/readyz``: its address is in one of the
    ``[metrics] allow`` networks, or it presents the token of ``[metrics] token_file``
    (``Authorization: Bearer …``, compared in constant time)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        address = None
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for network in settings.metrics_allow:
            if address in ipaddress.ip_network(network, strict=False):
                return True
    scheme, _, given = authorization.partition(" ")
    if not settings.metrics_token_file or scheme.lower() != "bearer":
        return False
    try:
        expected = Path(settings.metrics_token_file).read_text("utf-8").strip()
    except OSError:
        return False
    # An empty token file opens nothing.
    return bool(expected) and hmac.compare_digest(given.strip().encode(), expected.encode())


def prepare_directory(path: Path) -> None:
    """Empty ``path`` (a previous run's values) and name it to this process's future children
    (the supervisor, before it starts the workers; ``serve`` with one process, for itself)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)


def use_directory(path: Path) -> None:
    """From now on this process writes its values in ``path`` (prometheus-client's multiprocess
    mode), and a scrape reads every process's values there. Called once by a serving process,
    before any labelled value exists (every metric here has labels, so none does yet)."""
    global _directory
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _directory = path


def process_gone(pid: int) -> None:
    """A worker process ended: its open sessions no longer count (its counters still do)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Sample:
    """One value read from the database at scrape time (``flows.node_state.gauges``)."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class _Fixed:
    """A collector returning samples computed beforehand (the database's gauges)."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for sample in self.samples:
            family = families.get(sample.name)
            if family is None:
                family = GaugeMetricFamily(
                    sample.name, sample.help, labels=[k for k, _ in sample.labels]
                )
                families[sample.name] = family
            family.add_metric([v for _, v in sample.labels], sample.value)
        return list(families.values())


def exposition(gauges: Iterable[Sample] = ()) -> bytes:
    """The text format: every worker's counters (or this process's) and ``gauges``."""
    registry = CollectorRegistry()
    if _directory is not None:
        multiprocess.MultiProcessCollector(registry, str(_directory))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registered())
    registry.register(_Fixed(gauges))
    return generate_latest(registry)


class _Registered:
    """This process's own values (no multiprocess directory)."""

    def collect(self) -> Iterable[Metric]:
        return list(REGISTRY.collect())


#: Seconds between two readings of a worker's memory (``caducee_cache_bytes``,
#: ``caducee_allocator_bytes``).
MEMORY_GAUGE_SECONDS = 10.0


class MemoryGauges:
    """A background task of every worker process: publishes its bounded caches' sizes
    (:func:`bounded_cache.sizes`) and what its C allocator holds, read every
    :data:`MEMORY_GAUGE_SECONDS` rather than at each change (a sync of 100,000 messages fills a
    cache 100,000 times); and gives the allocator's hoard back to the system when it grows
    (:func:`memory_trim.trim_if_hoarding`, in a worker thread), so that the process's RSS
    follows what it uses over hours of mixed load rather than its past peaks (issue 20)."""

    name = "memory-gauges"

    def __init__(self, _app: App) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        await repeat(
            stop,
            self.once,
            first_delay=1.0,
            next_delay=lambda: MEMORY_GAUGE_SECONDS,
            what="memory gauges",
        )

    async def once(self) -> None:
        for name, size in bounded_cache.sizes().items():
            CACHE_BYTES.labels(cache=name).set(size)
        await asyncio.to_thread(memory_trim.trim_if_hoarding)
        for kind, size in memory_trim.allocator_bytes().items():
            ALLOCATOR_BYTES.labels(kind=kind).set(size)
