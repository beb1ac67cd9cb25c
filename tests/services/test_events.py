"""Mailbox change notifications reach subscribers, across nodes on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.services.delivery import deliver_local
from caducee.services.events import mailbox_events
from tests.services.helpers import person, practice


async def test_delivery_wakes_a_subscriber(app: App) -> None:
    await practice(app)
    _, box = await person(app, "a@cabinet.test")
    _, other = await person(app, "b@cabinet.test")
    async with (
        mailbox_events(app).subscribe(box.id) as wake,
        mailbox_events(app).subscribe(other.id) as quiet,
    ):
        await asyncio.sleep(0.2)  # the PostgreSQL listener connects
        await deliver_local(app, b"Subject: x\r\n\r\ny\r\n", ["a@cabinet.test"])
        assert await asyncio.wait_for(wake.get(), timeout=1) == box.id
        await asyncio.sleep(0.2)
        assert quiet.empty()


async def test_another_node_is_woken(app: App, settings: Settings) -> None:
    await practice(app)
    _, box = await person(app, "a@cabinet.test")
    async with open_app(settings) as node_b, mailbox_events(node_b).subscribe(box.id) as wake:
        await asyncio.sleep(0.3)
        await deliver_local(app, b"Subject: x\r\n\r\ny\r\n", ["a@cabinet.test"])
        if app.db.is_sqlite:  # one node per SQLite file: nothing crosses processes
            await asyncio.sleep(0.3)
            assert wake.empty()
        else:
            assert await asyncio.wait_for(wake.get(), timeout=1) == box.id


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL: NOTIFY, above
async def test_the_workers_of_a_sqlite_node_wake_each_other(
    app: App, settings: Settings, tmp_path: Path
) -> None:
    """Two worker processes of one SQLite node (two apps here, each with its socket in the
    node's run/events directory, as ``caducee serve`` sets them up) wake each other."""
    await practice(app)
    _, box = await person(app, "a@cabinet.test")
    directory = tmp_path / "events"
    async with (
        open_app(settings) as worker_b,
        mailbox_events(app).local_fanout(directory),
        mailbox_events(worker_b).local_fanout(directory),
        mailbox_events(worker_b).subscribe(box.id) as wake,
    ):
        # A worker that died without removing its name: nobody reads its socket any more.
        (directory / "999999.dead.sock").touch()
        await deliver_local(app, b"Subject: x\r\n\r\ny\r\n", ["a@cabinet.test"])
        assert await asyncio.wait_for(wake.get(), timeout=10) == box.id
        assert not (directory / "999999.dead.sock").exists()
    assert not list(directory.iterdir())  # each worker removed its own socket


async def test_a_cut_reaches_another_process_s_sessions(app: App, settings: Settings) -> None:
    """A cut published by a process outside the node's workers (the command line disabling an
    account) reaches the sessions of a serving process: PostgreSQL NOTIFY, or on SQLite a
    datagram to the sockets named in the node's run/events directory. A watch of another
    account is not woken."""
    await practice(app)
    doctor, box = await person(app, "a@cabinet.test")
    other, _ = await person(app, "b@cabinet.test")
    async with open_app(settings) as serving, contextlib.AsyncExitStack() as stack:
        hub = mailbox_events(serving)
        if serving.db.is_sqlite:
            await stack.enter_async_context(hub.local_fanout(settings.run_dir / "events"))
        else:
            await hub.start()  # listening once it returns: nothing to wait for
        by_account = await stack.enter_async_context(hub.watch_cuts(doctor.id, ()))
        by_mailbox = await stack.enter_async_context(hub.watch_cuts(None, {box.id}))
        bystander = await stack.enter_async_context(hub.watch_cuts(other.id, ()))
        await mailbox_events(app).publish_cut(account_ids=[doctor.id])
        await asyncio.wait_for(by_account.fired.wait(), timeout=30)
        await mailbox_events(app).publish_cut(mailbox_ids=[box.id])
        await asyncio.wait_for(by_mailbox.fired.wait(), timeout=30)
        assert not bystander.fired.is_set()
