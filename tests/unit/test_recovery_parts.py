"""The pure parts of surviving a lost store: multi-host URLs, failover errors, the ledger's
reading of published heads after a restore, the recovery figures, and the record retry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from kaipiao.config import Settings
from kaipiao.domain.lifecycle import Status
from kaipiao.engine.decide import Settlement
from kaipiao.engine.record import record_durably
from kaipiao.ledger.signing import Checkpoint
from kaipiao.ops.recovery_report import issuance_back
from kaipiao.services.recovery import lost_heads
from kaipiao.store.backup import libpq_url
from kaipiao.store.database import is_store_down
from kaipiao.store.recovery import Restore


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
         "postgresql+asyncpg:///db?host=h1:5432&host=h2:5433&target_session_attrs=read-write"),
        ("postgres://u:p@a:1,b:2/kp", "postgresql+asyncpg://u:p@/kp?host=a:1&host=b:2"),
        ("postgresql://u@localhost/test", "postgresql+asyncpg://u@localhost/test"),
    ],
)  # fmt: skip
def test_a_multi_host_url_becomes_asyncpg_hosts(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


def test_the_asyncpg_dialect_gets_every_host_and_the_session_attribute() -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
    from sqlalchemy.engine import make_url

    url = Settings(database_url="postgresql://k@h1:5432,h2:5433/db?target_session_attrs=read-write")
    assert url.database_url is not None
    _, kwargs = PGDialect_asyncpg().create_connect_args(make_url(url.database_url))
    assert kwargs["host"] == ["h1", "h2"]
    assert kwargs["port"] == [5432, 5433]
    assert kwargs["target_session_attrs"] == "read-write"


def test_libpq_url_gives_pg_dump_the_hosts_back() -> None:
    url = Settings(database_url="postgresql://k@h1:1,h2:2/db?target_session_attrs=read-write")
    assert url.database_url is not None
    assert (
        libpq_url(url.database_url) == "postgresql://k@h1:1,h2:2/db?target_session_attrs=read-write"
    )
    assert (
        libpq_url("postgresql+asyncpg://k@localhost:5432/test")
        == "postgresql://k@localhost:5432/test"
    )


class TargetServerAttributeNotMatched(Exception):
    pass


class ReadOnlySQLTransactionError(Exception):
    pass


@pytest.mark.parametrize("cause", [TargetServerAttributeNotMatched, ReadOnlySQLTransactionError])
def test_no_writable_host_is_the_store_being_down(cause: type[Exception]) -> None:
    error = DBAPIError("INSERT", {}, Exception("x"))
    error.__cause__ = cause("no host is writable")
    assert is_store_down(error)
    assert not is_store_down(DBAPIError("INSERT", {}, Exception("syntax")))


def checkpoint(size: int, time: str) -> Checkpoint:
    return Checkpoint(size, "00" * 32, time, "k", "s")


def test_heads_published_before_a_restore_past_its_head_are_evidence_not_errors() -> None:
    restore = Restore(seq=101, rolled_back_to=100, restored_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
                      backup_taken_at=datetime(2026, 5, 1, 11, tzinfo=UTC), backup="b.db")  # fmt: skip
    before_kept = checkpoint(90, "2026-05-01T10:00:00Z")
    lost = [checkpoint(150, "2026-05-01T11:30:00Z"), checkpoint(180, "2026-05-01T11:50:00Z")]
    after = checkpoint(160, "2026-05-01T12:10:00Z")
    keep, notes = lost_heads([restore], [before_kept, *lost, after])
    assert keep == [before_kept, after]
    assert "rolled back to event 100" in notes[0]
    assert "event 101 records it" in notes[0]
    assert "2 head(s), the last over 180 events" in notes[1]
    assert "events 101–180 of the old chain are gone" in notes[1]


def test_without_a_restore_every_head_is_checked() -> None:
    heads = [checkpoint(10, "2026-05-01T10:00:00Z")]
    assert lost_heads([], heads) == (heads, [])


def test_issuance_is_back_at_rate_at_the_first_second_at_four_fifths_of_calm() -> None:
    series = [{"t": float(t), "issued": n} for t, n in
              enumerate([10, 10, 10, 10, 10, 10, 0, 0, 0, 3, 9, 12])]  # fmt: skip
    assert issuance_back(series, killed=6.0, restored=8.0) == 5.0  # second 10 ends at 11
    assert issuance_back(series[:9], killed=6.0, restored=8.0) is None


class DownThenUp:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def write(self, work: Any) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("UPDATE", {}, ConnectionRefusedError("primary gone"))
        return True


async def test_an_answer_is_recorded_once_the_store_takes_writes_again() -> None:
    db = DownThenUp(failures=3)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    settlement = Settlement(Status.ISSUED, "issued")
    claimed: Any = type("C", (), {"invoice": type("I", (), {"id": "inv_1"})()})()
    assert await record_durably(db, claimed, settlement, datetime.now(UTC), sleep=sleep)  # type: ignore[arg-type]
    assert db.calls == 4
    assert slept == [0.2, 0.4, 0.8]


async def test_a_store_down_for_longer_than_the_patience_gives_up() -> None:
    db = DownThenUp(failures=100)

    async def sleep(_s: float) -> None:
        return None

    claimed: Any = type("C", (), {"invoice": type("I", (), {"id": "inv_1"})()})()
    with pytest.raises(OperationalError):
        await record_durably(db, claimed, Settlement(Status.ISSUED, "issued"), datetime.now(UTC),  # type: ignore[arg-type]
                             patience_s=0.0, sleep=sleep)  # fmt: skip
