"""``/api/v1/patients``: the practice's patient registry for practice software (scope
``patients``): list, read, create, change, delete, send the address verification. The same
service as the web pages and the CLI (:mod:`caducee.health.patients`), so the same checks."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.health import patients
from caducee.health.patients import Patient, PatientData

PATIENT_FIELDS: dict[str, Any] = {
    "nom": {"type": "string", "maxLength": 200},
    "prenom": {"type": "string", "maxLength": 200},
    "naissance": {"type": "string", "maxLength": 10, "description": "AAAA-MM-JJ ou JJ/MM/AAAA"},
    "email": {"type": "string", "format": "email", "maxLength": 320},
    "mobile": {"type": "string", "maxLength": 30},
    "ins": {"type": "string", "maxLength": 25},
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
    )


def json_response(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status)
