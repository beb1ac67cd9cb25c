from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caducee.domain.addresses import normalize_address, normalize_domain
from caducee.domain.identifiers import (
    luhn_valid,
    normalize_adeli,
    normalize_finess,
    normalize_rpps,
    normalize_siret,
)
from caducee.errors import InvalidInput


def with_luhn_key(body: str) -> str:
    return next(body + str(k) for k in range(10) if luhn_valid(body + str(k)))


def test_rpps_accepts_a_valid_key_and_spaces() -> None:
    assert normalize_rpps("10001234565") == "10001234565"
    assert normalize_rpps(" 100 0123 4565 ") == "10001234565"


@pytest.mark.parametrize("bad", ["10001234566", "1000123456", "100012345651", "1000123456A", ""])
def test_rpps_refuses_wrong_key_or_length(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_rpps(bad)
    assert "RPPS" in caught.value.fr


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_rpps_exactly_one_key_digit_is_valid(body: str) -> None:
    valid = [k for k in range(10) if luhn_valid(f"{body}{k}")]
    assert len(valid) == 1
    assert normalize_rpps(f"{body}{valid[0]}") == f"{body}{valid[0]}"


def test_adeli_finess_siret() -> None:
    assert normalize_adeli("751234567") == "751234567"
    assert normalize_adeli("2a1234567") == "2A1234567"
    with pytest.raises(InvalidInput):
        normalize_adeli("75123456")
    assert normalize_finess("750712184") == "750712184"
    with pytest.raises(InvalidInput):
        normalize_finess("75071218")
    siret = with_luhn_key("7350018080001")
    assert normalize_siret(siret) == siret
    with pytest.raises(InvalidInput):
        normalize_siret(siret[:-1] + str((int(siret[-1]) + 1) % 10))
    assert normalize_siret("35600000000048")  # La Poste: digit sum multiple of 5


def test_addresses_and_domains() -> None:
    assert normalize_address(" Dr.Martin@Cabinet-Exemple.FR ") == "dr.martin@cabinet-exemple.fr"
    assert normalize_domain("Cabinet.fr.") == "cabinet.fr"
    for bad in ("martin", "@x.fr", "a b@x.fr", "a@localhost", "a..b@x.fr", "a@-x.fr"):
        with pytest.raises(InvalidInput):
            normalize_address(bad)
