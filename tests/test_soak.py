"""The soak benchmark's code path, for half a minute, so that it cannot rot (issue 20).

``bench/soak.py`` runs for an hour outside CI; here the same functions run two real nodes on
the throwaway PostgreSQL (two worker processes each) under a light mixed load — SMTP in,
submission to a local peer, IMAP sync and IDLE on both nodes, POP3, the webmail and the API
through the round-robin balancer — and the run's end checks must hold: every acknowledged
message read back over IMAP once and whole, every submitted one delivered to the peer once,
``caducee audit verify`` passing, no internal error in the nodes' logs. Its figures (latency,
memory) are printed, never judged. A cluster needs a shared database: PostgreSQL only.
"""

from __future__ import annotations

from pathlib import Path

from bench.soak import DOORS, soak, soak_cluster

from tests.pgcluster import PgCluster


def test_a_short_soak_of_two_nodes_loses_nothing(pg_cluster: PgCluster, tmp_path: Path) -> None:
    with soak_cluster(
        tmp_path, pg_cluster.url(pg_cluster.create_database()), users=4, workers=2
    ) as (cluster, people, peer):
        report = soak(cluster, people, peer, minutes=0.5, rate=5.0, interval=10.0)
    # Each node stopped cleanly (SIGTERM: sessions closed, workers and supervisor exit 0).
    assert [node.proc.returncode for node in cluster.nodes if node.proc] == [0, 0]
    assert report.acknowledged > 0 and report.submitted > 0
    assert report.lost == [] and report.twice == [] and report.damaged == []
    assert report.unknown == []
    assert report.read_back == report.acknowledged
    assert report.out_missing == [] and report.out_twice == []
    assert report.nothing_lost
    assert report.audit_ok, report.audit_output
    assert report.log_errors == []
    # Every door was used, on both nodes (their processes were sampled each interval).
    assert all(report.served[door] > 0 for door in DOORS), report.served
    assert report.idle_wakes > 0
    for node in cluster.nodes:
        samples = report.samples[node.name]
        assert samples and all(len(s.processes) == 3 for s in samples)  # main and 2 workers
