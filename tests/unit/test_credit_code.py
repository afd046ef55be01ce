import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaipiao.domain.credit_code import (
    ALPHABET,
    WEIGHTS,
    CheckMode,
    check_character,
    validate_tax_id,
)
from kaipiao.domain.errors import InvalidTaxId


def test_weights_are_powers_of_three_mod_31() -> None:
    assert WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_known_valid_code() -> None:
    assert validate_tax_id("91310110666007217T") is None
    assert check_character("91310110666007217") == "T"


def test_wrong_check_character_rejected_or_warned() -> None:
    with pytest.raises(InvalidTaxId, match="expected 'T'") as info:
        validate_tax_id("91310110666007217U")
    assert info.value.code == "invalid_buyer_tax_id"
    warning = validate_tax_id("91310110666007217U", CheckMode.WARN)
    assert warning is not None
    assert "expected 'T'" in warning


@pytest.mark.parametrize("bad", ["9131011066600721IT", "9131011066600721", "", "x" * 18, "9" * 19])
def test_bad_shapes_rejected_even_in_warn_mode(bad: str) -> None:
    with pytest.raises(InvalidTaxId):
        validate_tax_id(bad, CheckMode.WARN)


@pytest.mark.parametrize("legacy", ["310110666007217", "31011066600721700", "3101106660072170000X"])
def test_legacy_numbers_accepted_by_shape(legacy: str) -> None:
    assert validate_tax_id(legacy) is None


@given(st.text(alphabet=ALPHABET, min_size=17, max_size=17))
def test_generated_codes_validate_and_any_single_change_is_caught(body: str) -> None:
    code = body + check_character(body)
    assert validate_tax_id(code) is None
    for position in range(17):
        for replacement in "0A":
            if code[position] == replacement:
                continue
            altered = code[:position] + replacement + code[position + 1 :]
            with pytest.raises(InvalidTaxId):
                validate_tax_id(altered)
