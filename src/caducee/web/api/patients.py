"""``/api/v1/patients``: the practice's patient registry for practice software (scope
``patients``): list, read, create, change, delete, send the address verification. The same
service as the web pages and the CLI (:mod:`caducee.health.patients`), so the same checks."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.health import patients
from caducee.health.patients import Patient, PatientData
from caducee.web.api.call import Call, Endpoint, int_param, json_body

PATIENT_FIELDS: dict[str, Any] = {
    "nom": {"type": "string", "maxLength": 200},
    "prenom": {"type": "string", "maxLength": 200},
    "naissance": {"type": "string", "maxLength": 10, "description": "AAAA-MM-JJ ou JJ/MM/AAAA"},
    "email": {"type": "string", "format": "email", "maxLength": 320},
    "mobile": {"type": "string", "maxLength": 30},
    "ins": {"type": "string", "maxLength": 25},
    "statut_ins": {
        "type": "string",
        "enum": list(patients.INS_STATUSES),
        "description": "Identitovigilance : seul un INS « qualifiee » est écrit dans les échanges",
    },
    "date_statut_ins": {"type": "string", "maxLength": 10},
    "mode": {"type": "string", "enum": list(patients.DELIVERY_MODES)},
    "consentement": {"type": "string", "maxLength": 10},
    "notes": {"type": "string", "maxLength": 2000},
    "adresse_partagee": {"type": "boolean"},
}
PATIENT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["nom", "prenom", "naissance", "email"],
    "properties": PATIENT_FIELDS,
    "additionalProperties": False,
}
PATIENT_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        **PATIENT_FIELDS,
        "verification": {"type": "string", "enum": list(patients.STATUSES)},
    },
}


def patient_json(patient: Patient) -> dict[str, Any]:
    data = patient.data
    return {
        "id": patient.id,
        "nom": data.last_name,
        "prenom": data.first_name,
        "naissance": data.birth_date,
        "email": data.email,
        "mobile": data.mobile,
        "ins": data.ins,
        "statut_ins": data.ins_status,
        "date_statut_ins": data.ins_status_date,
        "mode": data.delivery_mode,
        "consentement": data.consent_date,
        "notes": data.notes,
        "adresse_partagee": data.shared_address,
        "verification": patient.address_status,
    }


def patient_data(body: dict[str, Any]) -> PatientData:
    def text(name: str) -> str:
        value = body.get(name, "")
        return value if isinstance(value, str) else ""

    return PatientData(
        last_name=text("nom"),
        first_name=text("prenom"),
        birth_date=text("naissance"),
        email=text("email"),
        mobile=text("mobile"),
        ins=text("ins"),
        delivery_mode=text("mode") or "retrait",
        consent_date=text("consentement"),
        notes=text("notes"),
        shared_address=body.get("adresse_partagee") is True,
        ins_status=text("statut_ins"),
        ins_status_date=text("date_statut_ins"),
    )


def json_response(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status)


# ----- handlers


async def list_patients(call: Call) -> Response:
    found = await patients.list_patients(
        call.app, call.account.practice_id, call.request.query_params.get("q", "")[:100]
    )
    return json_response([patient_json(p) for p in found])


def _patient_id(call: Call) -> int:
    return int_param(call.request.path_params.get("patient_id"))


async def get_patient(call: Call) -> Response:
    found = await patients.get_patient(call.app, call.account.practice_id, _patient_id(call))
    return json_response(patient_json(found))


async def create_patient(call: Call) -> Response:
    created = await patients.add_patient(
        call.app,
        call.account.practice_id,
        patient_data(await json_body(call)),
        actor=call.account.login,
        source=call.source,
    )
    return call.answer(patient_json(created), location=f"/patients/{created.id}")


async def update_patient(call: Call) -> Response:
    changed = await patients.update_patient(
        call.app,
        call.account.practice_id,
        _patient_id(call),
        patient_data(await json_body(call)),
        actor=call.account.login,
        source=call.source,
    )
    return json_response(patient_json(changed))


async def delete_patient(call: Call) -> Response:
    await patients.delete_patient(
        call.app, call.account.practice_id, _patient_id(call), actor=call.account.login,
        source=call.source,
    )  # fmt: skip
    return call.answer()


async def verify_patient(call: Call) -> Response:
    await patients.send_verification(
        call.app, call.account.practice_id, _patient_id(call), actor=call.account.login,
        source=call.source,
    )  # fmt: skip
    return call.answer({"verification": "pending"})


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/patients",
        list_patients,
        "patients",
        "Patients du cabinet (recherche : q)",
        {"type": "array", "items": PATIENT_JSON},
        query=(("q", {"type": "string", "maxLength": 100}),),
    ),
    Endpoint(
        "POST",
        "/patients",
        create_patient,
        "patients",
        "Ajouter un patient au registre (201, Location : sa fiche)",
        PATIENT_JSON,
        request_body=PATIENT_BODY,
        status=201,
    ),
    Endpoint(
        "GET",
        "/patients/{patient_id}",
        get_patient,
        "patients",
        "Une fiche patient",
        PATIENT_JSON,
    ),
    Endpoint(
        "POST",
        "/patients/{patient_id}",
        update_patient,
        "patients",
        "Modifier une fiche (une nouvelle adresse est à vérifier)",
        PATIENT_JSON,
        request_body=PATIENT_BODY,
    ),
    Endpoint(
        "DELETE",
        "/patients/{patient_id}",
        delete_patient,
        "patients",
        "Retirer un patient du registre",
        {"type": "object"},
        status=204,
    ),
    Endpoint(
        "POST",
        "/patients/{patient_id}/verification",
        verify_patient,
        "patients",
        "Envoyer au patient le lien de vérification de son adresse (202 : courriel en file)",
        {"type": "object", "properties": {"verification": {"type": "string"}}},
        status=202,
    ),
)
