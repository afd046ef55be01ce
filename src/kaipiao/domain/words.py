"""Amounts in Chinese capital numerals (大写金额), by the PBOC rules for writing money.

- digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟 inside a group of four, groups 万 and 亿;
- one 零 stands for a run of zeros inside the number; trailing zeros of a group write nothing;
- 整 follows 元 when there are no 角 or 分; after 角 nothing is added;
- 零 follows 元 when 角 is zero and 分 is not (壹仟元零伍分);
- 10–19 are written with a leading 壹 (壹拾元整), as cheques and invoices require;
- negative amounts (red-letter invoices) start with 负.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_IN_GROUP = ("仟", "佰", "拾", "")
_GROUPS = ("", "万", "亿", "万亿")
MAX_YUAN = 10 ** (4 * len(_GROUPS)) - 1


def _group_words(group: int) -> str:
    """Words for 1..9999 inside one group of four digits, zeros folded to one 零."""
    out: list[str] = []
    pending_zero = False
    for unit, digit in zip(_IN_GROUP, f"{group:04d}", strict=True):
        if digit == "0":
            pending_zero = bool(out)
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        out.append(DIGITS[int(digit)] + unit)
    return "".join(out)


def _yuan_words(yuan: int) -> str:
    groups: list[int] = []
    while yuan:
        yuan, rest = divmod(yuan, 10000)
        groups.append(rest)
    out: list[str] = []
    zero_run = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero_run = bool(out)
            continue
        if out and (zero_run or group < 1000):
            out.append("零")
        zero_run = False
        out.append(_group_words(group) + _GROUPS[index])
    return "".join(out)


def amount_in_words(amount: Decimal) -> str:
    """Write `amount` (rounded half-up to 分) in 大写; raise ValueError past 万亿 or for NaN."""
    if not amount.is_finite():
        raise ValueError(f"cannot write {amount} in words")
    cents = int(abs(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)
    yuan, fraction = divmod(cents, 100)
    if yuan > MAX_YUAN:
        raise ValueError(f"{amount} is too large to write in words")
    jiao, fen = divmod(fraction, 10)
    sign = "负" if amount < 0 and cents else ""
    if cents == 0:
        return "零元整"
    head = _yuan_words(yuan) + "元" if yuan else ""
    if jiao == 0 and fen == 0:
        return f"{sign}{head}整"
    tail = ""
    if jiao:
        tail = DIGITS[jiao] + "角"
    elif yuan:
        tail = "零"
    if fen:
        tail += DIGITS[fen] + "分"
    return f"{sign}{head}{tail}"
