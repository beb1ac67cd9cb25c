"""The national MSSanté directory on both backends: import of the public extraction (columns
found by name, hostile lines reported by number, the file's limits), atomic re-import (a search
during the import sees the old directory or the new one, never a mix, and the old one is then
deleted), and the search semantics a practitioner relies on."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.annuaire_gen import HEADER, write

from caducee.app import App
from caducee.errors import InvalidInput
from caducee.health import annuaire
from caducee.services import audit
from caducee.store import annuaire_repo
from tests.health.test_trust_list import _Files


def _line(values: dict[str, str], order: tuple[str, ...] = HEADER) -> str:
    return "|".join(values.get(name, "") for name in order)


PEOPLE = [
    {
        "Type de BAL": "PER", "Adresse BAL": "helene.dupont@medecin.mssante.fr",
        "Identifiant PP": "10003456789", "Identification nationale PP": "810003456789",
        "Civilité d'exercice": "Dr", "Nom d'exercice": "DUPONT", "Prénom d'exercice": "Hélène",
        "Code profession": "10", "Libellé profession": "Médecin", "Code savoir-faire": "SM04",
        "Libellé savoir-faire": "Cardiologie et maladies vasculaires",
        "Raison sociale / Enseigne": "Hôpital Édouard-Herriot",
        "Service de rattachement": "Cardiologie", "Numéro et libellé de voie":
        "5 place d'Arsonval", "Code postal": "69003", "Commune": "Lyon",
    },
    {
        "Type de BAL": "PER", "Adresse BAL": "jean.dupont@medecin.mssante.fr",
        "Identifiant PP": "10009999999", "Identification nationale PP": "810009999999",
        "Nom d'exercice": "Dupont", "Prénom d'exercice": "Jean", "Libellé profession": "Médecin",
        "Libellé savoir-faire": "Médecine générale", "Code postal": "13008",
        "Commune": "Marseille",
    },
    {
        "Type de BAL": "PER", "Adresse BAL": "zoe.lefevre@infirmier.mssante.fr",
        "Identifiant PP": "10001112223", "Nom d'exercice": "LEFÈVRE", "Prénom d'exercice": "Zoé",
        "Libellé profession": "Infirmier", "Code postal": "69007", "Commune": "Lyon",
        "Numéro et libellé de voie": "12 rue de l'Œuvre",
    },
    {
        "Type de BAL": "ORG", "Adresse BAL": "secretariat.cardio@chu-lyon.mssante.fr",
        "Raison sociale / Enseigne": "CHU de Lyon", "Service de rattachement":
        "Secrétariat de cardiologie", "Code postal": "69004", "Commune": "Lyon",
    },
]  # fmt: skip


def _file(path: Path, rows: list[dict[str, str]], order: tuple[str, ...] = HEADER) -> Path:
    path.write_text(
        "\r\n".join(["|".join(order), *(_line(r, order) for r in rows)]) + "\r\n", "utf-8"
    )
    return path


async def _emails(app: App, query: str) -> list[str]:
    return [p.email for p in await annuaire.search(app, query)]


async def test_import_reads_the_header_and_reports_hostile_lines(app: App, tmp_path: Path) -> None:
    path = tmp_path / "extraction-correspondance-mssante.txt"
    expected = write(path, 300, hostile_every=40, shuffle=True)  # columns in another order
    assert {reason for _, reason in expected} >= {"colonnes", "UTF-8", "trop long", "contrôle"}
    seen: list[tuple[int, int]] = []
    report = await annuaire.import_file(
        app, path, progress=lambda done, total: seen.append((done, total))
    )
    assert report.rows == 301  # 300 generated + the row with quotes
    assert report.rejected_count == len(expected)
    for (line, reason), (got_line, fr, en) in zip(expected, report.rejected, strict=True):
        assert got_line == line and reason in fr and en
    assert seen and seen[-1][0] == seen[-1][1] == path.stat().st_size
    info = await annuaire.status(app)
    assert info is not None and info.row_count == 301 and info.rejected_count == len(expected)
    assert info.sha256 == report.sha256 and info.state == "active"
    # The columns were found by name although they came shuffled.
    quoted = await annuaire.search(app, "tilleuls quimper")
    assert [p.organisation for p in quoted] == ['Clinique "Les Tilleuls"']
    assert quoted[0].service == "Accueil 'principal'" and quoted[0].postcode == "29000"
    some = (await annuaire.search(app, "medecin"))[0]
    assert some.profession == "Médecin" and some.rpps and some.email.endswith(".mssante.fr")


async def test_bad_files_keep_the_directory_in_force(app: App, tmp_path: Path) -> None:
    good = await annuaire.import_file(app, _file(tmp_path / "a.txt", PEOPLE))
    not_directory = tmp_path / "autre.txt"
    not_directory.write_text("nom|prénom\nDupont|Jean\n", "utf-8")
    with pytest.raises(InvalidInput, match="Adresse BAL"):
        await annuaire.import_file(app, not_directory)
    only_bad = tmp_path / "mauvais.txt"
    only_bad.write_bytes("|".join(HEADER).encode() + b"\nPER|x@y.fr\n\xff\xfe\n")
    with pytest.raises(InvalidInput, match="aucune ligne valide"):
        await annuaire.import_file(app, only_bad)
    app.settings.annuaire_max_mb = 1
    big = tmp_path / "gros.txt"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(InvalidInput, match="limite"):
        await annuaire.import_file(app, big)
    with pytest.raises(InvalidInput, match="http"):
        await annuaire.import_from(app, "ftp://annuaire.example/extraction.txt")
    info = await annuaire.status(app)
    assert info is not None and info.generation == good.generation
    assert await _emails(app, "zoe") == ["zoe.lefevre@infirmier.mssante.fr"]
    # The failed imports' generations are deleted, none is left half-loaded.
    await annuaire.purge_retired(app)
    async with app.db.read() as conn:
        assert [i.generation for i in await annuaire_repo.imports(conn)] == [good.generation]


async def test_search_semantics(app: App, tmp_path: Path) -> None:
    await annuaire.import_file(app, _file(tmp_path / "a.txt", PEOPLE))
    helene, jean = "helene.dupont@medecin.mssante.fr", "jean.dupont@medecin.mssante.fr"
    zoe, secretariat = "zoe.lefevre@infirmier.mssante.fr", "secretariat.cardio@chu-lyon.mssante.fr"
    # Accents and case folded both ways, prefixes, several words combined.
    assert set(await _emails(app, "dupont")) == {helene, jean}
    assert await _emails(app, "HELENE") == [helene]
    assert await _emails(app, "Hélène dup") == [helene]
    assert await _emails(app, "cardio lyon dupont") == [helene]
    assert set(await _emails(app, "cardio lyon")) == {helene, secretariat}
    assert await _emails(app, "lefevre") == [zoe] == await _emails(app, "LEFÈVRE")
    assert await _emails(app, "oeuvre") == [zoe]  # « Œuvre » in the address
    # Profession, specialty (savoir-faire), structure, city, postcode, RPPS.
    assert set(await _emails(app, "médecin")) == {helene, jean}
    assert await _emails(app, "medecine generale") == [jean]
    assert await _emails(app, "infirm") == [zoe]
    assert await _emails(app, "herriot") == [helene]
    assert await _emails(app, "marseille") == [jean]
    assert set(await _emails(app, "69")) == {helene, zoe, secretariat}
    assert await _emails(app, "69003") == [helene]
    assert await _emails(app, "10003456789") == [helene]
    assert await _emails(app, "1000345") == [helene]
    assert await _emails(app, "arsonval") == [helene]
    # An exact word ranks before a longer one; a name before an organisation's mailbox.
    assert (await _emails(app, "lyon cardiologie"))[0] == helene
    # A whole address is looked up as such.
    assert await _emails(app, "Jean.Dupont@medecin.mssante.fr") == [jean]
    assert (await annuaire.lookup(app, "HELENE.DUPONT@medecin.mssante.fr")) is not None
    assert await annuaire.lookup(app, "inconnu@medecin.mssante.fr") is None
    # Every word must match; nothing usable, nothing found.
    assert await _emails(app, "dupont pharmacien") == []
    assert await _emails(app, "   ") == [] and await _emails(app, "d'") == []
    assert await _emails(app, "j dupont") == [jean]  # an initial narrows
    found = (await annuaire.search(app, "helene"))[0]
    assert found.display_name == "Dr Hélène DUPONT" and found.rpps == "10003456789"
    assert found.structure == "Hôpital Édouard-Herriot — Cardiologie"


async def test_without_a_directory_searches_find_nothing(app: App) -> None:
    assert await annuaire.search(app, "dupont") == []
    assert await annuaire.status(app) is None
    assert await annuaire.lookup(app, "a@b.fr") is None


async def test_reimport_is_atomic_and_the_old_generation_goes(app: App, tmp_path: Path) -> None:
    old = [dict(p, **{"Commune": "Ancienneville"}) for p in PEOPLE]
    first = await annuaire.import_file(app, _file(tmp_path / "old.txt", old))
    new_path = tmp_path / "new.txt"
    write(new_path, 3000, seed=7)
    with new_path.open("a", encoding="utf-8") as out:
        for person in PEOPLE:
            out.write(_line(dict(person, **{"Commune": "Nouvelleville"})) + "\r\n")
    seen: set[str] = set()
    done = asyncio.Event()

    async def searching() -> None:
        while not done.is_set():
            found = await annuaire.search(app, "herriot")
            cities = {p.city for p in found if p.email in {x["Adresse BAL"] for x in PEOPLE}}
            assert len(cities) == 1, cities  # never a mix of the two directories
            seen.update(cities)
            helene = await annuaire.lookup(app, "helene.dupont@medecin.mssante.fr")
            assert helene is not None  # never missing while one directory or the other serves
            await asyncio.sleep(0)

    task = asyncio.create_task(searching())
    try:
        second = await annuaire.import_file(app, new_path, purge=False)
    finally:
        done.set()
        await task
    assert seen and seen <= {"Ancienneville", "Nouvelleville"}
    assert second.replaced == first.generation and second.rows == 3001 + len(PEOPLE)
    assert {p.city for p in await annuaire.search(app, "herriot")} == {"Nouvelleville"}
    async with app.db.read() as conn:
        states = {i.generation: i.state for i in await annuaire_repo.imports(conn)}
        assert states == {first.generation: "retired", second.generation: "active"}
        assert (await annuaire_repo.generation_rows(conn, first.generation))[0] == len(PEOPLE)
    # The retired generation is deleted in batches while searches go on.
    annuaire_repo.DELETE_BATCH, batch = 7, annuaire_repo.DELETE_BATCH
    try:
        purged = await annuaire.purge_retired(app)
    finally:
        annuaire_repo.DELETE_BATCH = batch
    assert purged > len(PEOPLE)
    async with app.db.read() as conn:
        assert await annuaire_repo.generation_rows(conn, first.generation) == (0, 0)
        assert [i.generation for i in await annuaire_repo.imports(conn)] == [second.generation]
    assert {"helene.dupont@medecin.mssante.fr", "jean.dupont@medecin.mssante.fr"} <= set(
        await _emails(app, "dupont")
    )


@pytest.fixture
def files_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A real HTTP server of the files put in the dict (404 for others)."""
    files: dict[str, bytes] = {}
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Handler", (_Files,), {"files": files})
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


async def test_scheduled_refresh_from_a_url(
    app: App, tmp_path: Path, files_server: tuple[str, dict[str, bytes]]
) -> None:
    base, files = files_server
    app.settings.annuaire_url = f"{base}/extraction-correspondance-mssante.txt"
    refresher = annuaire.DirectoryRefresher(app)
    assert await refresher.refresh_once() is None  # 404: nothing in force, nothing changed
    assert await annuaire.status(app) is None
    files["/extraction-correspondance-mssante.txt"] = _file(tmp_path / "a.txt", PEOPLE).read_bytes()
    report = await refresher.refresh_once()
    assert report is not None and report.rows == len(PEOPLE)
    info = await annuaire.status(app)
    assert info is not None and info.source == app.settings.annuaire_url
    assert await _emails(app, "zoe") == ["zoe.lefevre@infirmier.mssante.fr"]
    assert await refresher.refresh_once() is None  # fresh enough: no download
    failures = [r async for r in audit.iter_records(app.db) if r.action == "annuaire.refresh"]
    assert [r.result for r in failures] == ["failed"]
    imports = [r async for r in audit.iter_records(app.db) if r.action == "annuaire.import"]
    assert f'"rows": {len(PEOPLE)}' in imports[-1].details
    # An import elsewhere left its replaced generation: the next round deletes it.
    again = await annuaire.import_from(app, app.settings.annuaire_url, purge=False, actor="cli")
    assert again.replaced == report.generation
    await refresher.refresh_once()
    async with app.db.read() as conn:
        assert [i.generation for i in await annuaire_repo.imports(conn)] == [again.generation]
