"""caducee.toml settings that have no command of their own: read, checked, applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from caducee.config import CONFIG_NAME, load_settings, render_config
from caducee.errors import ConfigurationError
from caducee.protocols.smtp.limits import SmtpLimits
from caducee.protocols.tcp import ClientLimits


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / CONFIG_NAME).write_text(text, "utf-8")
    return tmp_path


async def test_client_limits_apply_to_every_mail_door(tmp_path: Path) -> None:
    data = _write(
        tmp_path,
        'hostname = "mail.cabinet.test"\n[limits]\nconnections_per_address = 2\n'
        "connections_per_minute = 3\n",
    )
    settings = load_settings(data)
    limits = ClientLimits.from_settings(settings)  # IMAP and POP3
    assert SmtpLimits.from_settings(settings).client_limits() == limits
    assert [await limits.admit("192.0.2.1", now=0.0) for _ in range(3)] == [True, True, False]
    limits.release("192.0.2.1")
    assert await limits.admit("192.0.2.1", now=0.0)  # the third connection of the minute
    limits.release("192.0.2.1")
    assert not await limits.admit("192.0.2.1", now=1.0)  # a fourth in the same minute: refused
    assert await limits.admit("192.0.2.2", now=1.0)  # another address is not affected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\nconnections_per_address = 0\n", "au moins 1"),
        ('[limits]\nconnections_per_minute = "beaucoup"\n', "nombre entier attendu"),
        ('public_url = "ftp://mail.cabinet.test"\n', "https://"),
        ('deployment = "test"\n', "production"),
        ("[auto_reply]\nonce_per_days = 0\n", "entre 1 et 365"),
        ("[imap]\nsearch_budget_seconds = 0\n", "search_budget_seconds doit être positif"),
        ('[imap]\nsearch_budget_seconds = "long"\n', "nombre attendu"),
        ("[server]\nloop_lag_warn_ms = -1\n", "loop_lag_warn_ms"),
        ("[annuaire]\nmax_mb = 0\n", "annuaire.max_mb doivent valoir au moins 1"),
        ("[annuaire]\nrefresh_hours = 0\n", "annuaire.refresh_hours"),
        ("[cluster]\nheartbeat_seconds = 0\n", "heartbeat_seconds strictement positif"),
        ("[trust]\nsnapshot_seconds = -1\n", "snapshot_seconds doit être positif"),
        ('[cluster]\nsingle_node = "oui"\n', "single_node"),
        ("[outbound]\nlease_seconds = 0\n", "lease_seconds doit valoir au moins 1"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(_write(tmp_path, text))


def test_public_base_url_defaults_to_the_host_name(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, 'hostname = "mail.cabinet.test"\n'))
    assert settings.public_base_url == "https://mail.cabinet.test"
    settings = load_settings(
        _write(tmp_path, 'public_url = "https://portail.cabinet.test:8443/"\n')
    )
    assert settings.public_base_url == "https://portail.cabinet.test:8443"


def test_trace_retention_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CADUCEE_TRACE_RETENTION_DAYS", raising=False)
    assert load_settings(_write(tmp_path, "")).trace_retention_days == 365
    data = _write(tmp_path, "[trace]\nretention_days = 90\n")
    assert load_settings(data).trace_retention_days == 90
    monkeypatch.setenv("CADUCEE_TRACE_RETENTION_DAYS", "30")
    assert load_settings(data).trace_retention_days == 30


def test_auto_reply_period_is_read_and_written(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "")).auto_reply_once_per_days == 4
    settings = load_settings(_write(tmp_path, "[auto_reply]\nonce_per_days = 7\n"))
    assert settings.auto_reply_once_per_days == 7
    rendered = render_config(settings)
    assert "[auto_reply]\n" in rendered and "once_per_days = 7\n" in rendered
    assert load_settings(_write(tmp_path, rendered)).auto_reply_once_per_days == 7


def test_search_budget_and_lag_probe_are_read_and_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CADUCEE_LOOP_LAG_WARN_MS", raising=False)
    defaults = load_settings(_write(tmp_path, ""))
    assert (defaults.imap_search_budget_seconds, defaults.loop_lag_warn_ms) == (10.0, 0)
    settings = load_settings(
        _write(tmp_path, "[imap]\nsearch_budget_seconds = 2.5\n[server]\nloop_lag_warn_ms = 100\n")
    )
    assert (settings.imap_search_budget_seconds, settings.loop_lag_warn_ms) == (2.5, 100)
    again = load_settings(_write(tmp_path, render_config(settings)))
    assert (again.imap_search_budget_seconds, again.loop_lag_warn_ms) == (2.5, 100)
    monkeypatch.setenv("CADUCEE_LOOP_LAG_WARN_MS", "250")
    assert load_settings(tmp_path).loop_lag_warn_ms == 250


def test_directory_settings_are_read_and_written(tmp_path: Path) -> None:
    defaults = load_settings(_write(tmp_path, ""))
    assert (defaults.annuaire_url, defaults.annuaire_refresh_hours, defaults.annuaire_max_mb) == (
        "", 24, 512,
    )  # fmt: skip
    text = (
        '[annuaire]\nurl = "https://annuaire.test/extraction.txt"\nrefresh_hours = 6\n'
        "max_mb = 200\n"
    )
    settings = load_settings(_write(tmp_path, text))
    again = load_settings(_write(tmp_path, render_config(settings)))
    assert (again.annuaire_url, again.annuaire_refresh_hours, again.annuaire_max_mb) == (
        "https://annuaire.test/extraction.txt", 6, 200,
    )  # fmt: skip


def test_cluster_and_snapshot_settings_are_read_and_written(tmp_path: Path) -> None:
    defaults = load_settings(_write(tmp_path, ""))
    assert (
        defaults.cluster_single_node,
        defaults.cluster_heartbeat_seconds,
        defaults.trust_snapshot_seconds,
    ) == (False, 10.0, 30.0)
    text = "[cluster]\nsingle_node = true\nheartbeat_seconds = 2.5\n[trust]\nsnapshot_seconds = 5\n"
    settings = load_settings(_write(tmp_path, text))
    again = load_settings(_write(tmp_path, render_config(settings)))
    assert (
        again.cluster_single_node,
        again.cluster_heartbeat_seconds,
        again.trust_snapshot_seconds,
    ) == (True, 2.5, 5.0)
