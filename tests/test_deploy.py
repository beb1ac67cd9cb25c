"""The files of ``deploy/`` (issue 21) checked by the tools that will read them: the systemd
unit by ``systemd-analyze verify``, the Prometheus scrape example and alert rules by
``promtool``, the logrotate example by ``logrotate -d``; and the alert rules only name metrics
that ``/metrics`` exposes. The tools come from Debian (``scripts/system-deps test``)."""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from caducee.app import App
from caducee.web import create_web_app

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "caducee.service"
PROMETHEUS = DEPLOY / "prometheus"

HARDENING = (
    "ProtectSystem=strict",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    "PrivateTmp=yes",
    "ProtectHome=yes",
    "ReadWritePaths=/var/lib/caducee",
    "PrivateDevices=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter=@system-service",
)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert found, f"{name} missing: run scripts/system-deps test"
    return found


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=120, check=False
    )


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    text = UNIT.read_text("utf-8")
    lines = set(text.splitlines())
    for directive in HARDENING:
        assert directive in lines, directive
    assert "ExecStart=/opt/caducee/bin/caducee serve --data /var/lib/caducee" in lines
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines and "KillMode=mixed" in lines
    # verify checks that ExecStart exists: point it at this interpreter's caducee.
    here = Path(sys.executable).parent / "caducee"
    assert here.exists()
    unit = tmp_path / "caducee.service"
    unit.write_text(text.replace("/opt/caducee/bin/caducee", str(here)), "utf-8")
    result = run(tool("systemd-analyze"), "verify", "--man=no", unit)
    # Unknown or misspelt directives are only warnings on stderr: none is accepted.
    assert result.returncode == 0 and result.stderr == "", result.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomme=yes"))
    assert "Unknown key" in run(tool("systemd-analyze"), "verify", "--man=no", broken).stderr


def test_prometheus_example_and_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rules = run(promtool, "check", "rules", PROMETHEUS / "caducee-rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS" in rules.stdout
    # The example names the operator's files: give promtool some to find.
    (tmp_path / "ca.crt").write_text("")
    (tmp_path / "token").write_text("jeton\n")
    config = (PROMETHEUS / "prometheus.yml").read_text("utf-8")
    config = config.replace("/etc/prometheus/caducee-ca.crt", str(tmp_path / "ca.crt"))
    config = config.replace("/etc/prometheus/caducee-metrics.token", str(tmp_path / "token"))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(PROMETHEUS / "caducee-rules.yml", tmp_path)
    checked = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_alert_rules_name_metrics_that_exist(app: App) -> None:
    transport = httpx.ASGITransport(app=create_web_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    exposed: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        exposed.add(family.name)
        for suffix in ("_total", "_bucket", "_count", "_sum"):
            exposed.add(family.name + suffix)
    rules = yaml.safe_load((PROMETHEUS / "caducee-rules.yml").read_text("utf-8"))
    named = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\bcaducee_[a-z_]+", rule["expr"])
    }
    assert len(named) >= 8
    assert named <= exposed, named - exposed


def test_logrotate_example_parses(tmp_path: Path) -> None:
    # The example's user does not exist here: the test's own takes its place.
    user = getpass.getuser()
    text = (
        (DEPLOY / "logrotate" / "caducee")
        .read_text("utf-8")
        .replace("caducee caducee", f"{user} {user}")
    )
    config = tmp_path / "caducee"
    config.write_text(text)
    result = run(tool("logrotate"), "-d", "-s", tmp_path / "state", config)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "error" not in output, output
    assert "rotating pattern: /var/log/caducee/*.log" in output
