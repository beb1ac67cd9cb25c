"""The outbound delivery worker: takes due recipients from the queue and delivers them by SMTP.

One round (:meth:`OutboundWorker.run_once`):

1. **claim** due recipients under a lease (``store.queue_repo``: ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL), so two nodes never deliver the same recipient;
2. **deliver** through the SMTP client (:mod:`caducee.clients.smtp`, which speaks the protocol
   and classifies the replies), one connection per destination domain, one transaction per message
   carrying all its recipients at that domain (at most 100 per transaction, RFC 5321
   §4.5.3.1.8). Route: ``settings.transport[domain]`` (host, port, TLS policy) if set, else
   the MX records tried by preference (RFC 5321 §5.1; equal preferences in random order), else
   the domain's own A/AAAA records (the implicit MX); a null MX (RFC 7505) refuses mail.
   STARTTLS (RFC 3207) whenever offered; with ``tls = "required"`` (route) or the domain in
   ``require_tls_domains``, STARTTLS must succeed with a certificate verified against the
   system store plus ``outbound_ca_file``, otherwise the attempt is a temporary failure. A
   domain of the MSSanté trust space (listed in the whitelist) always gets mutual TLS: the
   server verified against the trust store only, our operator certificate presented, never a
   plaintext fallback (``health.trust_tls.operator_client_context``). DSN
   parameters (RFC 3461 ENVID, RET, NOTIFY, ORCPT) go on to a next hop that advertises DSN;
   8BITMIME, SMTPUTF8 and SIZE are used when offered;
3. **record** each recipient's result: 2xx delivered; 5xx bounced at once; 4xx or no
   connection deferred with back-off (RFC 5321 §4.5.4.1: 5 min, 15 min, 30 min, 1 h, 2 h,
   then every 4 h) until ``queue_max_age_hours``, then expired. Audit records
   ``queue.delivered``, ``queue.bounced``, ``queue.expired`` (target: the recipient's keyed
   pseudonym); a final recipient's address is sealed in the same transaction;
4. **report** (RFC 3464, ``services.dsn``): failures, one delay notice after
   ``queue_delay_notice_hours``, and "relayed" when NOTIFY=SUCCESS was asked of a next hop
   that does not speak DSN. Reports are marked due in the same transaction as the result and
   sent afterwards, so a crash in between delays a report but never loses it;
5. **forget** the content of finished messages; purge their history after 7 days.

``run(stop)`` claims again whenever mail is queued (in process, and through PostgreSQL
``LISTEN caducee_queue`` across nodes), a destination's delivery ends, or ``poll_seconds``
pass; each destination domain is delivered by its own task (at most ``concurrency`` at once),
so a slow or silent server never holds the mail for other domains.

MX targets listen on port 25; ``mx_port`` exists so that tests can point MX delivery at an
unprivileged port.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import random
import secrets
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

import dns.asyncresolver
import dns.name
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA

from caducee.app import App
from caducee.clients import smtp
from caducee.clients.smtp import DeliveryFailure, Reply, Result, Target, local_reply
from caducee.config import TransportRoute
from caducee.errors import CaduceeError, ConfigurationError, NotFound
from caducee.health import teletransmission, trust_list
from caducee.health.trust_tls import load_trust_store, operator_client_context
from caducee.i18n import tr
from caducee.services import metrics, trace
from caducee.services.audit import AuditEvent, append
from caducee.services.dns import DnsTemporaryError, lookup, make_resolver
from caducee.services.dsn import RecipientStatus, Report, send_report, xtext_encode
from caducee.services.queue import (
    CHANNEL,
    REPLY_MAX,
    backoff,
    finish,
    queue_signal,
    read_content,
    recipient_target,
    reveal,
    wants_report,
)
from caducee.store import node_repo, queue_repo
from caducee.store.queue_repo import QueueRow

log = logging.getLogger(__name__)

#: The longest one domain's delivery may take before it is abandoned (temporary failure); a
#: claim holds its recipients ``[outbound] lease_seconds`` (an hour by default), and a session
#: never outlives three quarters of it (see :meth:`OutboundWorker.session_deadline`).
SESSION_DEADLINE = timedelta(minutes=45)
#: At stop, how long deliveries in progress may still take (seconds) before they are cut.
STOP_GRACE_SECONDS = 10.0
#: A report that could not be handed over is retried after this long.
REPORT_RETRY = timedelta(minutes=15)
#: How long delivered/bounced/expired recipients stay visible in ``caducee queue list --all``.
HISTORY = timedelta(days=7)
#: RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients per transaction.
MAX_RECIPIENTS = 100
#: Addresses tried per domain and attempt (all MX hosts and their A/AAAA records together).
MAX_TARGETS = 10


@dataclass
class RunStats:
    claimed: int = 0
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    expired: int = 0
    reports: int = 0
    domains: list[str] = field(default_factory=list)


def _by_domain(rows: Sequence[QueueRow]) -> dict[str, list[QueueRow]]:
    groups: dict[str, list[QueueRow]] = {}
    for row in rows:
        groups.setdefault(row.domain, []).append(row)
    return groups


# ----- the worker --------------------------------------------------------------------------------


class OutboundWorker:
    """Delivers the outbound queue (see the module docstring). ``caducee serve`` runs one."""

    name = "outbound"

    def __init__(
        self,
        app: App,
        *,
        mx_port: int = 25,
        batch_size: int = 100,
        concurrency: int = 10,
        poll_seconds: float = 30.0,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        data_timeout: float = 600.0,
        node_id: str | None = None,
    ) -> None:
        self.app = app
        self.mx_port = mx_port
        self.batch_size = batch_size
        self.concurrency = concurrency
        # A claim left by a dead node is taken over once expired: look at least that often.
        self.lease = timedelta(seconds=app.settings.queue_lease_seconds)
        self.poll_seconds = min(poll_seconds, self.lease.total_seconds())
        # RFC 5321 §4.5.3.2: 5 minutes per command, 10 minutes for the end of DATA
        self.client = smtp.SmtpClient(
            app.settings.hostname,
            self._context,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            data_timeout=data_timeout,
        )
        self.owner = (node_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")[
            :64
        ]
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}

    # ----- loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set.

        Each destination domain is delivered by a task of its own, which records its results
        as soon as it is done: a slow or silent server (a tarpit) holds its own messages only,
        never the mail for other domains, which is claimed and sent meanwhile. A domain being
        delivered is not claimed again until its task ends. At ``stop``, deliveries in progress
        get :data:`STOP_GRACE_SECONDS` to finish; the leases of those cut short expire and
        their recipients are tried again (by this node after a restart, or by another)."""
        signal = queue_signal(self.app)
        listener = None
        if not self.app.db.is_sqlite:
            listener = asyncio.create_task(self._listen(), name="outbound-queue-listen")
        log.info("%s node=%s", tr("file d'envoi démarrée", "outbound queue started"), self.owner)
        inflight: dict[str, asyncio.Task[None]] = {}
        finished = asyncio.Event()

        def done(domain: str, task: asyncio.Task[None]) -> None:
            if inflight.get(domain) is task:
                del inflight[domain]
            finished.set()

        try:
            while not stop.is_set():
                signal.event.clear()
                finished.clear()
                claimed = 0
                try:
                    now = datetime.now(UTC)
                    if len(inflight) < self.concurrency:
                        rows = await self._claim(now, skip_domains=set(inflight))
                        claimed = len(rows)
                        for domain, group in _by_domain(rows).items():
                            task = asyncio.create_task(
                                self._deliver_and_record(domain, group, now, RunStats()),
                                name=f"outbound-{domain}",
                            )
                            inflight[domain] = task
                            task.add_done_callback(functools.partial(done, domain))
                    await self.send_reports(now)
                    await self.cleanup(now)
                except Exception:
                    log.exception("outbound queue round failed")
                if claimed >= self.batch_size and len(inflight) < self.concurrency:
                    continue
                waiters = [
                    asyncio.create_task(stop.wait()),
                    asyncio.create_task(signal.event.wait()),
                    asyncio.create_task(finished.wait()),
                ]
                try:
                    await asyncio.wait(
                        waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            if inflight:
                _, late = await asyncio.wait(list(inflight.values()), timeout=STOP_GRACE_SECONDS)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            log.info(tr("file d'envoi arrêtée", "outbound queue stopped"))

    async def _listen(self) -> None:
        """PostgreSQL: wake up when any node queues mail (``NOTIFY caducee_queue``)."""
        signal = queue_signal(self.app)
        while True:
            try:
                async for _payload in node_repo.listen(self.app.db, CHANNEL):
                    signal.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarts: listen again shortly
                log.warning("queue listener lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(5)

    async def run_once(self, now: datetime | None = None) -> RunStats:
        """One round: claim, deliver (each domain's results recorded as soon as it is done),
        report, clean up; returns when every domain is done. ``now`` is for tests."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        stats = RunStats()
        rows = await self._claim(now)
        stats.claimed = len(rows)
        if rows:
            groups = _by_domain(rows)
            stats.domains = sorted(groups)
            limit = asyncio.Semaphore(self.concurrency)

            async def one(domain: str, group: list[QueueRow]) -> None:
                async with limit:
                    await self._deliver_and_record(domain, group, now, stats)

            await asyncio.gather(*(one(d, g) for d, g in groups.items()))
        stats.reports = await self.send_reports(now)
        await self.cleanup(now)
        return stats

    async def _claim(self, now: datetime, skip_domains: set[str] | None = None) -> list[QueueRow]:
        async with self.app.db.write() as conn:
            return await queue_repo.claim_due(
                conn, now, self.owner, now + self.lease, self.batch_size, skip_domains or ()
            )

    async def _deliver_and_record(
        self, domain: str, rows: list[QueueRow], now: datetime, stats: RunStats
    ) -> None:
        """Deliver one domain's recipients and record the results at once (a crash later
        cannot make them be delivered twice)."""
        results = await self._deliver_domain(domain, rows)
        try:
            await self._record(rows, results, now, stats)
        except Exception:  # the leases expire: the recipients are tried again
            log.exception("outbound results not recorded domain=%s", domain)

    # ----- routes --------------------------------------------------------------------------

    @property
    def resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            self._resolver = make_resolver(self.app.settings)
        return self._resolver

    def tls_policy(self, domain: str, route: TransportRoute | None) -> str:
        if domain in self.app.settings.require_tls_domains:
            return "required"
        return route.tls if route is not None else "opportunistic"

    async def targets(self, domain: str) -> list[Target]:
        """Where to deliver mail for ``domain``, in order; DeliveryFailure when nowhere."""
        route = self.app.settings.transport.get(domain)
        policy = self.tls_policy(domain, route)
        if await trust_list.is_listed(self.app, domain):
            # MSSanté trust space: mutual TLS verified against the trust store, never plaintext.
            policy = "mssante"
        if route is not None:
            return [Target(route.host, route.port, None, policy)]
        if domain.startswith("[") and domain.endswith("]"):  # RFC 5321 §4.1.3 address literal
            literal = domain[1:-1]
            literal = literal[5:] if literal.lower().startswith("ipv6:") else literal
            try:
                ip = str(ipaddress.ip_address(literal))
            except ValueError:
                raise DeliveryFailure(
                    local_reply(
                        "5.1.2", f"adresse IP invalide {domain}", f"invalid IP address {domain}"
                    )
                ) from None
            return [Target(ip, self.mx_port, ip, policy)]
        try:
            answer = await lookup(self.resolver, domain, "MX")
        except DnsTemporaryError:
            raise DeliveryFailure(_dns_temporary(domain)) from None
        if answer.nxdomain:
            raise DeliveryFailure(
                local_reply(
                    "5.1.2",
                    f"le domaine {domain} n'existe pas (DNS)",
                    f"domain {domain} does not exist (DNS)",
                )
            )
        mx = [rec for rec in answer.records if isinstance(rec, dns.rdtypes.ANY.MX.MX)]
        if len(mx) == 1 and mx[0].exchange == dns.name.root:  # RFC 7505 null MX
            raise DeliveryFailure(
                local_reply(
                    "5.1.10",
                    f"le domaine {domain} n'accepte pas de courrier (MX nul, RFC 7505)",
                    f"domain {domain} accepts no mail (null MX, RFC 7505)",
                )
            )
        hosts: list[str] = []
        for _, same in groupby(sorted(mx, key=lambda rec: rec.preference), lambda r: r.preference):
            group = [rec.exchange.to_text(omit_final_dot=True) for rec in same]
            random.shuffle(group)  # RFC 5321 §5.1: spread load over equal preferences
            hosts += [host for host in group if host and host != "."]
        implicit = not hosts
        if implicit:  # RFC 5321 §5.1: no MX, the domain itself is the implicit MX
            hosts = [domain]
        targets: list[Target] = []
        unsure = False
        for host in dict.fromkeys(hosts):
            for rdtype in ("A", "AAAA"):
                try:
                    found = await lookup(self.resolver, host, rdtype)
                except DnsTemporaryError:
                    unsure = True
                    continue
                for rec in found.records:
                    if isinstance(rec, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
                        targets.append(Target(host, self.mx_port, str(rec.address), policy))
        if targets:
            return targets[:MAX_TARGETS]
        if unsure:
            raise DeliveryFailure(_dns_temporary(domain))
        if implicit:
            raise DeliveryFailure(
                local_reply(
                    "5.4.4",
                    f"le domaine {domain} n'a pas de serveur de messagerie (ni MX ni adresse)",
                    f"domain {domain} has no mail server (no MX, no address)",
                )
            )
        raise DeliveryFailure(
            local_reply(
                "4.4.4",
                f"les serveurs MX de {domain} n'ont pas d'adresse IP",
                f"the MX hosts of {domain} have no IP address",
            )
        )

    # ----- delivery ------------------------------------------------------------------------

    def session_deadline(self) -> float:
        """Seconds one domain's delivery may take: well within the claim's lease, so that no
        other node takes over recipients still being delivered."""
        return min(SESSION_DEADLINE.total_seconds(), 0.75 * self.lease.total_seconds())

    async def _deliver_domain(self, domain: str, rows: list[QueueRow]) -> dict[int, Result]:
        """Deliver ``rows`` (all for ``domain``); never raises: failures become results."""
        try:
            async with asyncio.timeout(self.session_deadline()):
                return await self._attempt(domain, rows)
        except DeliveryFailure as failure:
            return {row.id: Result(failure.reply) for row in rows}
        except TimeoutError:
            reply = local_reply(
                "4.4.2",
                f"remise vers {domain} trop longue, interrompue",
                f"delivery to {domain} took too long and was stopped",
            )
        except Exception:
            log.exception("outbound delivery failed domain=%s", domain)
            reply = local_reply("4.3.0", "erreur interne du serveur", "internal server error")
        return {row.id: Result(reply) for row in rows}

    async def _transactions(
        self, rows: list[QueueRow], results: dict[int, Result]
    ) -> list[smtp.Transaction]:
        """Each message's transactions, MAX_RECIPIENTS recipients each (keyed by row id)."""
        by_message: dict[int, list[QueueRow]] = {}
        for row in rows:
            by_message.setdefault(row.message_id, []).append(row)
        transactions: list[smtp.Transaction] = []
        for message_rows in by_message.values():
            try:
                raw = await read_content(self.app, message_rows[0])
            except CaduceeError:
                log.exception("queued content unreadable queue_id=%d", message_rows[0].message_id)
                reply = local_reply(
                    "4.3.0", "contenu du message illisible", "message content unreadable"
                )
                results.update({row.id: Result(reply) for row in message_rows})
                continue
            first = message_rows[0]
            for start in range(0, len(message_rows), MAX_RECIPIENTS):
                part = message_rows[start : start + MAX_RECIPIENTS]
                transactions.append(
                    smtp.Transaction(
                        mail_from=first.mail_from,
                        recipients=[
                            smtp.Recipient(row.id, row.address, row.notify, row.orcpt)
                            for row in part
                        ],
                        raw=raw,
                        ret=first.ret,
                        envid=xtext_encode(first.envid) if first.envid else None,
                    )
                )
        return transactions

    async def _attempt(self, domain: str, rows: list[QueueRow]) -> dict[int, Result]:
        results: dict[int, Result] = {}
        transactions = await self._transactions(rows, results)
        if not transactions:
            return results
        failure: DeliveryFailure | None = None
        for target in await self.targets(domain):
            try:
                results.update(await self.client.deliver(target, transactions))
                return results
            except DeliveryFailure as error:  # RFC 5321 §5.1: try the next address
                log.info(
                    "outbound host failed domain=%s host=%s status=%s",
                    domain,
                    target.host,
                    error.reply.status,
                )
                failure = error
        assert failure is not None
        results.update(
            {r.key: Result(failure.reply) for each in transactions for r in each.recipients}
        )
        return results

    def _context(self, policy: str) -> ssl.SSLContext:
        """The TLS context of a policy, built once: for ``mssante`` mutual TLS against the trust
        store (``health.trust_tls``); else verified with ``outbound_ca_file`` for ``required``,
        opportunistic otherwise (``clients.smtp.tls_context``)."""
        context = self._contexts.get(policy)
        if context is not None:
            return context
        settings = self.app.settings
        if policy == "mssante":
            try:
                context = operator_client_context(settings, load_trust_store(settings))
            except ConfigurationError as exc:
                raise DeliveryFailure(local_reply("4.7.5", exc.fr, exc.en)) from None
        else:
            context = smtp.tls_context(policy, settings.outbound_ca_file)
        self._contexts[policy] = context
        return context

    # ----- results -------------------------------------------------------------------------

    async def _record(
        self, rows: Sequence[QueueRow], results: dict[int, Result], now: datetime, stats: RunStats
    ) -> None:
        settings = self.app.settings
        max_age = timedelta(hours=settings.queue_max_age_hours)
        notice_after = timedelta(hours=settings.queue_delay_notice_hours)
        missing = Result(local_reply("4.3.0", "aucun résultat", "no result"))
        counted: list[tuple[str, float | None]] = []  # result, seconds since queued if final
        async with self.app.db.write() as conn:
            for row in rows:
                result = results.get(row.id, missing)
                reply = result.reply
                attempts = row.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_attempt_at": now,
                    "last_code": reply.code,
                    "last_status": reply.status,
                    "last_reply": reply.text[:REPLY_MAX],
                    "remote_mta": reply.remote_mta,
                }
                action: str | None = None
                if reply.kind == "delivered":
                    values.update(state=queue_repo.DELIVERED, finished_at=now)
                    # RFC 3461 §5.2.2: a "relayed" DSN when the next hop cannot report success
                    if (
                        "SUCCESS" in row.notify
                        and not result.next_hop_dsn
                        and wants_report(row.mail_from, row.notify, "SUCCESS")
                    ):
                        values["report"] = "relayed"
                    action = "queue.delivered"
                    stats.delivered += 1
                elif reply.kind == "permanent":
                    values.update(state=queue_repo.BOUNCED, finished_at=now)
                    if wants_report(row.mail_from, row.notify, "FAILURE"):
                        values["report"] = "failed"
                    action = "queue.bounced"
                    stats.bounced += 1
                else:
                    expires = row.created_at + max_age
                    if now >= expires:
                        values.update(state=queue_repo.EXPIRED, finished_at=now)
                        if wants_report(row.mail_from, row.notify, "FAILURE"):
                            values["report"] = "failed"
                        action = "queue.expired"
                        stats.expired += 1
                    else:
                        values.update(
                            state=queue_repo.DEFERRED,
                            next_attempt_at=min(now + backoff(attempts), expires),
                        )
                        if (
                            not row.delay_notified
                            and now >= row.created_at + notice_after
                            and wants_report(row.mail_from, row.notify, "DELAY")
                        ):
                            values.update(report="delayed", delay_notified=True)
                        stats.deferred += 1
                if not await queue_repo.save_attempt(conn, row.id, self.owner, values):
                    log.warning("queue row changed meanwhile, result dropped id=%d", row.id)
                    continue
                log.info(
                    "outbound attempt queue_id=%d recipient_id=%d status=%s",
                    row.message_id,
                    row.id,
                    reply.status,
                )
                event = action.removeprefix("queue.") if action else "deferred"
                age = (now - row.created_at).total_seconds() if action else None
                counted.append((event, age))
                await trace.record_outbound(
                    self.app,
                    conn,
                    row.message_id,
                    row.address,
                    event,
                    f"{reply.status} {reply.text}"[:500],
                    now,
                )
                if action is not None:
                    if row.origin_mailbox_id is not None:  # a télétransmission lot's verdict
                        await teletransmission.record_delivery(
                            conn,
                            row.message_id,
                            action == "queue.delivered",
                            f"{reply.status} {reply.text}",
                            now,
                        )
                    await finish(self.app, conn, [row.id])  # the address leaves the clear
                    await append(
                        conn,
                        AuditEvent(
                            actor="system",
                            action=action,
                            target=await recipient_target(self.app, conn, row),
                            source="outbound",
                            result="ok" if action == "queue.delivered" else "failed",
                            details={
                                "queue_id": row.message_id,
                                "mailbox": row.origin_mailbox_id,
                                "status": reply.status,
                                "code": reply.code,
                                "remote": reply.remote_mta,
                                "attempts": attempts,
                            },
                        ),
                        now=now,
                    )
        # Counted once recorded: every attempt of every door's mail ends here.
        for event, age in counted:
            metrics.DELIVERIES.labels(event).inc()
            if age is not None:
                metrics.DELIVERY_SECONDS.labels(event).observe(max(0.0, age))

    def _status(self, row: QueueRow) -> RecipientStatus:
        action = row.report
        default = {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "2.0.0")
        until = None
        if action == "delayed":
            until = row.created_at + timedelta(hours=self.app.settings.queue_max_age_hours)
        return RecipientStatus(
            final_recipient=row.address,
            action=action,
            status=row.last_status or default,
            original_recipient=row.orcpt,
            remote_mta=row.remote_mta,
            smtp_code=row.last_code,
            diagnostic=row.last_reply or "",
            last_attempt=row.last_attempt_at,
            will_retry_until=until,
        )

    async def send_reports(self, now: datetime | None = None) -> int:
        """Send the delivery reports that are due; returns how many reports went out."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        async with self.app.db.write() as conn:
            rows = await queue_repo.claim_reports(
                conn, now, self.owner, now + self.lease, self.batch_size
            )
        if not rows:
            return 0
        by_message: dict[int, list[QueueRow]] = {}
        for row in await reveal(self.app, rows):
            by_message.setdefault(row.message_id, []).append(row)
        done: list[int] = []
        later: list[int] = []
        sent = 0
        max_age = timedelta(hours=self.app.settings.queue_max_age_hours)
        for message_id, group in by_message.items():
            first = group[0]
            ids = [row.id for row in group]
            if not first.mail_from:  # never a report about a report
                done += ids
                continue
            try:
                report = Report(
                    reporting_mta=self.app.settings.hostname,
                    sender=first.mail_from,
                    original=await read_content(self.app, first),
                    recipients=[self._status(row) for row in group],
                    arrival=first.created_at,
                    envid=first.envid,
                    ret=first.ret,
                    queue_id=message_id,
                    max_bytes=self.app.settings.max_message_bytes,
                )
                await send_report(self.app, report, now=now)
            except NotFound as exc:  # the sender's mailbox or the content is gone
                log.warning("report dropped queue_id=%d: %s", message_id, exc.en)
                done += ids
                continue
            except Exception:
                if now > first.created_at + max_age + timedelta(days=1):
                    log.exception("report given up queue_id=%d", message_id)
                    done += ids
                else:
                    log.exception("report postponed queue_id=%d", message_id)
                    later += ids
                continue
            log.info("report sent queue_id=%d recipients=%d", message_id, len(group))
            done += ids
            sent += 1
        async with self.app.db.write() as conn:
            if done:
                await queue_repo.finish_reports(conn, done, self.owner)
            if later:
                await queue_repo.postpone(conn, later, self.owner, now + REPORT_RETRY)
        return sent

    async def cleanup(self, now: datetime | None = None) -> None:
        """Forget the content of finished messages; purge their history after HISTORY."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        blobs = self.app.blobs
        async with self.app.db.read() as conn:
            finished = await queue_repo.done_blobs(conn)
        for message_id, blob_id in finished:
            async with self.app.db.write() as conn:
                forgotten = await queue_repo.forget_blob(conn, message_id, blob_id)
                if forgotten:
                    await blobs.forget(conn, [blob_id])
            if forgotten:
                await blobs.remove_files([blob_id])
        async with self.app.db.write() as conn:
            await queue_repo.purge_finished(conn, now - HISTORY)


def _dns_temporary(domain: str) -> Reply:
    return local_reply(
        "4.4.3",
        f"résolution DNS de {domain} impossible pour l'instant",
        f"DNS lookup for {domain} failed for now",
    )
