"""The event hash: every field counts, and field boundaries cannot be shifted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kaipiao.ledger.chain import GENESIS, Event, check_link, event_hash, time_text

BASE = (1, "inv_1", "sel_1", "accepted", "2026-11-26T01:02:03.000004Z", '{"a":1}', GENESIS)


def test_every_field_changes_the_hash() -> None:
    original = event_hash(*BASE)
    for i in range(len(BASE)):
        changed = list(BASE)
        changed[i] = 2 if i == 0 else str(changed[i]) + "x"
        assert event_hash(*changed) != original, i  # type: ignore[arg-type]


def test_absent_and_empty_fields_and_shifted_boundaries_differ() -> None:
    assert event_hash(1, None, "s", "t", "x", "p", GENESIS) != event_hash(
        1, "", "s", "t", "x", "p", GENESIS
    )
    assert event_hash(1, "ab", "c", "t", "x", "p", GENESIS) != event_hash(
        1, "a", "bc", "t", "x", "p", GENESIS
    )


def test_times_hash_the_same_from_a_datetime_and_from_sqlite_text() -> None:
    shanghai = timezone(timedelta(hours=8))
    aware = datetime(2026, 11, 26, 9, 2, 3, 4, tzinfo=shanghai)
    assert time_text(aware) == "2026-11-26T01:02:03.000004Z"
    assert time_text("2026-11-26 01:02:03.000004") == time_text(aware.astimezone(UTC))


def test_links_are_checked_in_order() -> None:
    first = Event(*BASE)
    assert check_link(1, GENESIS, first, first.digest()) is None
    assert "edited" in (check_link(1, GENESIS, first, "0" * 64) or "")
    assert "missing" in (check_link(1, GENESIS, Event(2, *BASE[1:]), "") or "")
    assert "reordered" in (check_link(1, "f" * 64, first, first.digest()) or "")


def test_the_one_format_encoding_is_the_netstring_encoding() -> None:
    """The fast path (ASCII ids) and the field-by-field netstrings hash the same bytes."""
    import hashlib

    from kaipiao.ledger.chain import _TAG, _field, event_hash

    def netstrings(*fields: str | None) -> str:
        return hashlib.sha3_256(_TAG + b"".join(_field(f) for f in fields)).hexdigest()

    args = ("inv_1", "sel_1", "issued", "2026-11-26T08:00:00.000001Z",
            '{"buyer":"上海某某","n":1}', "ab" * 32)  # fmt: skip
    assert event_hash(7, *args) == netstrings("7", *args)
    # A non-ASCII id takes the field-by-field path; an absent id too.
    assert event_hash(7, "发票1", *args[1:]) == netstrings("7", "发票1", *args[1:])
    assert event_hash(7, None, *args[1:]) == netstrings("7", None, *args[1:])
