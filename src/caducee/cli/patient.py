"""``caducee patient``: the practice's patient registry (list, add, show, import, verify,
delete). Output shows names and addresses: it is meant for the practice's own terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, progress_bar, with_app
from caducee.health import patient_import, patient_rgpd, patients
from caducee.health.patients import PatientData
from caducee.i18n import tr

app = typer.Typer(help="Registre des patients d'un cabinet / a practice's patient registry.")
PracticeOption = Annotated[int, typer.Option("--practice", help="N° du cabinet / practice id")]
STATUS = {
    "unverified": ("non vérifiée", "not verified"),
    "pending": ("en attente", "pending"),
    "verified": ("vérifiée", "verified"),
}


@app.command("list")
def list_(
    practice: PracticeOption,
    search: Annotated[str, typer.Option("--search", help="Nom, adresse…")] = "",
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Liste les patients. / List the patients."""

    async def action(context: App) -> list[patients.Patient]:
        return await patients.list_patients(context, practice, search)

    table = Table(
        "ID", tr("Patient", "Patient"), tr("Naissance", "Born"), tr("Adresse", "Address"),
        tr("Vérification", "Verification"), tr("Mode", "Mode"),
    )  # fmt: skip
    for patient in with_app(data, action):
        table.add_row(
            str(patient.id),
            patient.display_name,
            patient.data.birth_date,
            patient.data.email,
            tr(*STATUS[patient.address_status]),
            patient.data.delivery_mode,
        )
    console.print(table)


@app.command("add")
def add(
    practice: PracticeOption,
    last_name: Annotated[str, typer.Option("--last-name", help="Nom")],
    first_name: Annotated[str, typer.Option("--first-name", help="Prénom")],
    birth_date: Annotated[str, typer.Option("--birth-date", help="JJ/MM/AAAA")],
    email: Annotated[str, typer.Option("--email", help="Adresse personnelle")],
    mobile: Annotated[str, typer.Option("--mobile", help="Mobile (SMS)")] = "",
    ins: Annotated[str, typer.Option("--ins", help="INS")] = "",
    ins_status: Annotated[
        str,
        typer.Option(
            "--ins-status",
            help="Statut de l'identité : provisoire, recuperee, validee, qualifiee "
            "(seul un INS qualifié est utilisé dans les échanges)",
        ),
    ] = "",
    mode: Annotated[str, typer.Option("--mode", help="retrait, pdf ou zip")] = "retrait",
    shared: Annotated[bool, typer.Option("--shared", help="Adresse partagée")] = False,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Ajoute un patient. / Add a patient."""

    async def action(context: App) -> patients.Patient:
        return await patients.add_patient(
            context,
            practice,
            PatientData(
                last_name,
                first_name,
                birth_date,
                email,
                mobile,
                ins,
                mode,
                shared_address=shared,
                ins_status=ins_status,
            ),
            actor="cli",
            source="cli",
        )

    created = with_app(data, action)
    console.print(tr(f"Patient n° {created.id} ajouté.", f"Patient #{created.id} added."))


@app.command("show")
def show(
    practice: PracticeOption,
    patient_id: Annotated[int, typer.Argument(help="N° du patient / patient id")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Affiche une fiche. / Show a patient."""

    async def action(context: App) -> patients.Patient:
        return await patients.get_patient(context, practice, patient_id)

    patient = with_app(data, action)
    table = Table(show_header=False)
    for label, value in (
        (tr("Patient", "Patient"), patient.display_name),
        (tr("Naissance", "Born"), patient.data.birth_date),
        (tr("Adresse", "Address"), patient.data.email),
        (
            tr("Adresse partagée", "Shared address"),
            tr("oui", "yes") if patient.data.shared_address else tr("non", "no"),
        ),
        (tr("Vérification", "Verification"), tr(*STATUS[patient.address_status])),
        ("Mobile", patient.data.mobile or "—"),
        ("INS", patient.data.ins or "—"),
        (
            tr("Statut de l'identité", "Identity status"),
            f"{patient.data.ins_status} ({patient.data.ins_status_date})"
            if patient.data.ins_status
            else "—",
        ),
        (tr("Mode d'envoi", "Delivery mode"), patient.data.delivery_mode),
    ):
        table.add_row(label, value)
    console.print(table)


@app.command("verify")
def verify(
    practice: PracticeOption,
    patient_id: Annotated[int, typer.Argument(help="N° du patient / patient id")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Envoie le lien de vérification de l'adresse. / Send the address verification link."""

    async def action(context: App) -> str:
        return await patients.send_verification(
            context, practice, patient_id, actor="cli", source="cli"
        )

    with_app(data, action)
    console.print(tr("Lien de vérification envoyé.", "Verification link sent."))


@app.command("delete")
def delete(
    practice: PracticeOption,
    patient_id: Annotated[int, typer.Argument(help="N° du patient / patient id")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Retire un patient du registre. / Remove a patient."""

    async def action(context: App) -> None:
        await patients.delete_patient(context, practice, patient_id, actor="cli", source="cli")

    with_app(data, action)
    console.print(tr(f"Patient n° {patient_id} retiré.", f"Patient #{patient_id} removed."))


@app.command("export")
def export(
    practice: PracticeOption,
    patient_id: Annotated[int, typer.Argument(help="N° du patient / patient id")],
    to: Annotated[Path, typer.Option("--to", help="Fichier ZIP à créer / ZIP file to write.")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Exporte ce que le cabinet détient sur un patient (demande d'accès, RGPD). / Export what
    the practice holds about a patient (access request)."""
    if to.exists():
        raise fail(tr(f"{to} existe déjà : choisissez un autre fichier.", f"{to} already exists."))

    async def action(context: App) -> patient_rgpd.PatientExport:
        return await patient_rgpd.export_patient(
            context, practice, patient_id, to, actor="cli", source="cli"
        )

    done = with_app(data, action)
    console.print(
        tr(
            f"Patient n° {patient_id} exporté dans {done.path} : {done.pickups} dépôt(s), "
            f"{done.replies} réponse(s) par le portail.",
            f"Patient #{patient_id} exported to {done.path}: {done.pickups} pickup(s), "
            f"{done.replies} portal reply(ies).",
        )
    )


@app.command("erase")
def erase(
    practice: PracticeOption,
    patient_id: Annotated[int, typer.Argument(help="N° du patient / patient id")],
    confirm: Annotated[
        str,
        typer.Option("--confirm", help="Le nom de famille du patient, pour confirmer / last name."),
    ],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Efface un patient du registre et ses coordonnées (RGPD) ; l'audit et les messages des
    praticiens restent. / Erase a patient (registry entry and contact data)."""

    async def action(context: App) -> patient_rgpd.Erased:
        return await patient_rgpd.erase_patient(
            context, practice, patient_id, confirm=confirm, actor="cli", source="cli"
        )

    done = with_app(data, action)
    console.print(
        tr(
            f"Patient n° {patient_id} effacé : fiche, coordonnées sur {done.pickups} dépôt(s) "
            f"({done.revoked} retiré(s) du portail), {done.contacts} contact(s). Le journal "
            "d'audit et les messages des boîtes des praticiens restent.",
            f"Patient #{patient_id} erased: registry entry, contact data on {done.pickups} "
            f"pickup(s) ({done.revoked} withdrawn), {done.contacts} contact(s). The audit "
            "trail and the practitioners' messages stay.",
        )
    )


@app.command("import")
def import_(
    practice: PracticeOption,
    file: Annotated[Path, typer.Argument(help="Fichier CSV / CSV file")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Importe des patients d'un fichier CSV (voir docs/patients.md). / Import a CSV file."""
    try:
        content = file.read_bytes()
    except OSError as error:
        raise fail(
            tr(f"Lecture de {file} impossible : {error}", f"Cannot read {file}: {error}")
        ) from None

    with progress_bar(tr("Patients", "Patients")) as progress:

        async def action(context: App) -> patient_import.ImportReport:
            return await patient_import.import_csv(
                context, practice, content, actor="cli", source="cli", progress=progress
            )

        report = with_app(data, action)
    console.print(
        tr(
            f"{len(report.imported)} patient(s) importé(s), {len(report.rejected)} ligne(s) "
            "rejetée(s).",
            f"{len(report.imported)} patient(s) imported, {len(report.rejected)} row(s) rejected.",
        )
    )
    for line, reason in report.rejected:
        console.print(tr(f"  ligne {line} : {reason}", f"  line {line}: {reason}"), markup=False)
    if report.rejected:
        raise typer.Exit(1)
