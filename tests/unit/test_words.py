import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaipiao.domain.words import MAX_YUAN, amount_in_words


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("1005", "壹仟零伍元整"),
        ("325.04", "叁佰贰拾伍元零肆分"),
        ("1409.50", "壹仟肆佰零玖元伍角"),
        ("0", "零元整"),
        ("100010000", "壹亿零壹万元整"),
        ("10", "壹拾元整"),
        ("15", "壹拾伍元整"),
        ("100000", "壹拾万元整"),
        ("100700", "壹拾万零柒佰元整"),
        ("107000.53", "壹拾万柒仟元伍角叁分"),
        ("1000.05", "壹仟元零伍分"),
        ("0.50", "伍角"),
        ("0.05", "伍分"),
        ("0.15", "壹角伍分"),
        ("100000000", "壹亿元整"),
        ("100000001", "壹亿零壹元整"),
        ("1010", "壹仟零壹拾元整"),
        ("6007.14", "陆仟零柒元壹角肆分"),
        ("-1005", "负壹仟零伍元整"),
        ("-0.05", "负伍分"),
        ("12345678901.23", "壹佰贰拾叁亿肆仟伍佰陆拾柒万捌仟玖佰零壹元贰角叁分"),
        ("0.004", "零元整"),
        ("0.005", "壹分"),
    ],
)
def test_examples(amount: str, words: str) -> None:
    assert amount_in_words(Decimal(amount)) == words


def test_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="too large"):
        amount_in_words(Decimal(MAX_YUAN + 1))
    with pytest.raises(ValueError, match="cannot write"):
        amount_in_words(Decimal("NaN"))


_D = "零壹贰叁肆伍陆柒捌玖"


def _reference(cents: int) -> str:
    """Independent implementation: write every digit with its unit, then collapse zeros by regex."""
    if cents == 0:
        return "零元整"
    sign = "负" if cents < 0 else ""
    cents = abs(cents)
    yuan, frac = divmod(cents, 100)
    units = [
        "",
        "拾",
        "佰",
        "仟",
        "万",
        "拾",
        "佰",
        "仟",
        "亿",
        "拾",
        "佰",
        "仟",
        "万",
        "拾",
        "佰",
        "仟",
    ]
    digits = str(yuan)
    text = "".join(_D[int(d)] + units[len(digits) - 1 - i] for i, d in enumerate(digits))
    text = re.sub("零[拾佰仟]", "零", text)
    text = re.sub("零+", "零", text)
    text = re.sub("零(万|亿)", r"\1", text)
    text = re.sub("亿万", "亿", text)
    text = re.sub("零$", "", text)
    text = re.sub("(.)万亿", r"\1万亿", text)
    jiao, fen = divmod(frac, 10)
    if yuan == 0:
        text = ""
    else:
        text += "元"
    if jiao == 0 and fen == 0:
        return sign + text + "整"
    if jiao:
        text += _D[jiao] + "角"
    elif yuan:
        text += "零"
    if fen:
        text += _D[fen] + "分"
    return sign + text


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_matches_independent_implementation(cents: int) -> None:
    amount = Decimal(cents).scaleb(-2)
    assert amount_in_words(amount) == _reference(cents)


@given(st.integers(min_value=1, max_value=10**14))
def test_uses_only_allowed_characters(cents: int) -> None:
    words = amount_in_words(Decimal(cents).scaleb(-2))
    assert set(words) <= set(_D + "拾佰仟万亿元角分整")
    assert "零零" not in words
