"""Keys shared by replicas: loaded from the environment or mounted files, never invented for a
replica, and a replica signing under another key than the ledger's refuses to start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from kaipiao.bootstrap import secret_box_for, signer_for
from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.ledger.signing import Signer
from kaipiao.services import ledger
from kaipiao.services.errors import ServiceError
from kaipiao.services.secrets import SecretError
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.migrate import head_revision, is_current
from tests import chart
from tests.engine_support import accept
from tests.factories import SELLER_TAX_ID


def test_keys_from_inline_values_and_files(tmp_path: Path) -> None:
    inline = Settings(data_dir=tmp_path, ledger_key=chart.LEDGER_KEY, secrets_key=chart.SECRETS_KEY)
    (tmp_path / "l.pem").write_text(chart.LEDGER_KEY)
    (tmp_path / "s.key").write_text(chart.SECRETS_KEY + "\n")
    files = Settings(data_dir=tmp_path, ledger_key_file=tmp_path / "l.pem",
                     secrets_key_file=tmp_path / "s.key")  # fmt: skip
    assert signer_for(inline).key_id == signer_for(files).key_id
    sealed = secret_box_for(inline).seal("app-secret")
    assert secret_box_for(files).open(sealed, {}, "secret") == "app-secret"
    assert not (tmp_path / "ledger-key.pem").exists()  # nothing invented in the data directory


def test_a_named_key_file_must_exist(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ledger_key_file=tmp_path / "missing.pem",
                        secrets_key_file=tmp_path / "missing.key")  # fmt: skip
    with pytest.raises(FileNotFoundError):
        signer_for(settings)
    with pytest.raises(FileNotFoundError):
        secret_box_for(settings)
    assert not (tmp_path / "missing.pem").exists()


def test_bad_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KAIPIAO_LEDGER_KEY does not hold an Ed25519"):
        signer_for(Settings(data_dir=tmp_path, ledger_key="not a key"))
    with pytest.raises(SecretError, match="not a Fernet key"):
        secret_box_for(Settings(data_dir=tmp_path, secrets_key="short"))
    with pytest.raises(ValueError, match="inline or as a file"):
        Settings(ledger_key="x", ledger_key_file=tmp_path / "k")


def test_database_url_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("postgresql://u:p@db:5432/k\n")
    assert Settings(database_url_file=tmp_path / "url").database_url == (
        "postgresql+asyncpg://u:p@db:5432/k"
    )
    with pytest.raises(ValueError, match="cannot read"):
        Settings(database_url_file=tmp_path / "none")


async def test_another_signing_key_refuses_to_start(database: Database) -> None:
    deployment = Signer.from_pem(chart.LEDGER_KEY.encode(), "the deployment's key")
    other = Signer(Ed25519PrivateKey.generate())
    await ledger.check_signer(database, other)  # no checkpoint yet: any key may start
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    await accept(database, seller, 3)
    assert await ledger.make_checkpoint(database, deployment, now=utcnow()) is not None
    await ledger.check_signer(database, deployment)
    with pytest.raises(ServiceError) as caught:
        await ledger.check_signer(database, other)
    assert caught.value.code == "ledger_key_mismatch"
    assert deployment.key_id in caught.value.message and other.key_id in caught.value.message


async def test_a_newer_releases_schema_counts_as_current(database: Database) -> None:
    def set_revision(revision: str) -> Callable[[Any], None]:
        def run(conn: Any) -> None:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})

        return run

    assert await is_current(database)
    head = head_revision()
    assert head is not None
    try:
        await database.write(set_revision("from-a-newer-release"))
        assert await is_current(database)
        await database.write(set_revision("0001"))
        assert not await is_current(database)
    finally:
        await database.write(set_revision(head))


def test_fernet_key_shape() -> None:
    assert Fernet(chart.SECRETS_KEY.encode())
