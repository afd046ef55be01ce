"""Issue 19: emailing an invoice's files to its buyer, against a real SMTP server process
(aiosmtpd, `tests/smtp_server.py`) started by the test, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import ipaddress
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path

from kaipiao.clock import utcnow
from kaipiao.domain.sellers import Seller
from kaipiao.engine.files import FileFetchConfig, FileFetcher
from kaipiao.engine.mail import MailConfig, MailDeliverer
from kaipiao.engine.retry import RetryPolicy
from kaipiao.engine.worker import Worker
from kaipiao.platform.outbound import OutboundPolicy
from kaipiao.sandbox.fake import FakePlatform
from kaipiao.services import delivery, intake
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.services.secrets import SecretBox
from kaipiao.services.sellers import add_seller
from kaipiao.store import mail as mail_store
from kaipiao.store.database import Database
from kaipiao.store.filestore import LocalFileStore
from tests.engine_support import FAST, all_invoices
from tests.factories import SELLER_TAX_ID, invoice_body
from tests.integration.test_engine_sandbox import run_until_terminal
from tests.integration.test_invoice_files import fetch_all

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = OutboundPolicy([ipaddress.ip_network("127.0.0.0/8")])
QUICK = MailConfig(idle_poll_s=0.05, backoff=RetryPolicy(base_s=0.05, cap_s=0.1), timeout_s=5)
BUYER = "buyer@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(
    port: int,
    directory: Path,
    *,
    refuse: bool = False,
    tls: tuple[Path, Path] | None = None,
    mode: str = "--starttls",
    auth: tuple[str, str] | None = None,
) -> Iterator[None]:
    args = [sys.executable, "-m", "tests.smtp_server", str(port), str(directory)]
    args += ["--auth", *auth] if auth else []
    args += ["--refuse"] if refuse else []
    args += [mode, str(tls[0]), str(tls[1])] if tls else []
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def issued_with_files(db: Database, seller: Seller, box: SecretBox, port: int,
                            store: LocalFileStore, security: str = "none",
                            login: tuple[str, str] | None = None) -> str:  # fmt: skip
    username, password = login or (None, None)
    sender = delivery.MailSender("127.0.0.1", port, security, "fapiao@seller.example.com",
                                 username=username, password=password)  # fmt: skip
    await delivery.set_mail_sender(db, box, seller.id, sender, now=utcnow())
    raw = invoice_body("M-1")
    raw["buyer"] = {**raw["buyer"], "email": BUYER}
    body = InvoiceCreate.model_validate(raw)
    accepted = await intake.submit_invoice(db, seller, body.to_domain(), body.canonical(),
                                           now=utcnow())  # fmt: skip
    fake = FakePlatform()
    await run_until_terminal(Worker(db, fake, FAST, seed=5), db, 20)
    fetcher = FileFetcher(db, fake, store, utcnow, FileFetchConfig(idle_poll_s=0.05))
    await fetch_all(fetcher, db)
    return str(accepted.document["id"])


async def delivery_of(db: Database) -> dict[str, object]:
    [invoice] = await all_invoices(db)
    assert invoice.delivery is not None
    return invoice.delivery


async def until(db: Database, deliverer: MailDeliverer, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        await deliverer.send_due()
        shown = await delivery_of(db)
        if shown["status"] == status:
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError(f"delivery not {status}: {await delivery_of(db)}")


async def setup(database: Database, tmp_path: Path) -> tuple[Seller, SecretBox, LocalFileStore]:
    seller = await add_seller(database, name="甲公司", tax_id=SELLER_TAX_ID, now=utcnow(),
                              region="31")  # fmt: skip
    box = SecretBox.load_or_create(tmp_path / "secrets.key")
    return seller.seller, box, LocalFileStore(tmp_path / "files")


async def test_the_buyer_receives_both_files(database: Database, tmp_path: Path) -> None:
    seller, box, store = await setup(database, tmp_path)
    port, inbox = free_port(), tmp_path / "inbox"
    inbox.mkdir()
    with smtp_server(port, inbox):
        await issued_with_files(database, seller, box, port, store)
        assert (await delivery_of(database))["status"] == "pending"
        deliverer = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK)
        shown = await until(database, deliverer, "sent")
    assert shown["to"] == BUYER and shown["attempts"] == 1
    [received] = list(inbox.glob("*.eml"))
    message: Message = email.message_from_bytes(received.read_bytes())
    [invoice] = await all_invoices(database)
    attached = {part.get_filename(): part.get_payload(decode=True)
                for part in message.walk() if part.get_filename()}  # fmt: skip
    number = invoice.invoice_number
    assert set(attached) == {f"{number}.pdf", f"{number}.xml"}
    assert attached[f"{number}.pdf"] == store.get(f"{seller.id}/{invoice.id}.pdf")
    assert attached[f"{number}.xml"] == store.get(f"{seller.id}/{invoice.id}.xml")
    assert message["To"] == BUYER


async def test_a_permanent_refusal_fails_with_the_reply(database: Database, tmp_path: Path) -> None:
    seller, box, store = await setup(database, tmp_path)
    port = free_port()
    with smtp_server(port, tmp_path, refuse=True):
        invoice_id = await issued_with_files(database, seller, box, port, store)
        deliverer = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK)
        shown = await until(database, deliverer, "failed")
        assert shown["attempts"] == 1 and "550 5.1.1" in str(shown["reason"]), shown
        assert await deliverer.send_due() == 0  # never retried
        # Re-sending puts it back to pending (attempts reset); refused again, failed again.
        again = await delivery.resend(database, seller, invoice_id, now=utcnow())
        assert again.delivery is not None and again.delivery["status"] == "pending"
        await until(database, deliverer, "failed")


async def test_a_server_that_is_down_is_retried(database: Database, tmp_path: Path) -> None:
    seller, box, store = await setup(database, tmp_path)
    port, inbox = free_port(), tmp_path / "inbox"
    inbox.mkdir()
    await issued_with_files(database, seller, box, port, store)
    deliverer = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK)
    assert await deliverer.send_due() == 1
    shown = await delivery_of(database)
    assert shown["status"] == "pending" and shown["attempts"] == 1, shown
    assert "Connection" in str(shown["reason"]) or "refused" in str(shown["reason"]), shown
    with smtp_server(port, inbox):
        shown = await until(database, deliverer, "sent")
    assert int(str(shown["attempts"])) >= 2 and len(list(inbox.glob("*.eml"))) == 1


async def test_a_seller_without_a_sender_fails_at_once(database: Database, tmp_path: Path) -> None:
    seller, box, store = await setup(database, tmp_path)
    await issued_with_files(database, seller, box, free_port(), store)
    await database.write(lambda conn: conn.exec_driver_sql("DELETE FROM seller_mail"))
    deliverer = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK)
    shown = await until(database, deliverer, "failed")
    assert "no mail sender" in str(shown["reason"])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, as PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


async def test_starttls_with_a_login_and_the_certificate_checked(
    database: Database, tmp_path: Path
) -> None:
    seller, box, store = await setup(database, tmp_path)
    port, inbox = free_port(), tmp_path / "inbox"
    inbox.mkdir()
    cert, key = self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=str(cert))
    login = ("fapiao", "s3cret-pw")
    with smtp_server(port, inbox, tls=(cert, key), auth=login):
        await issued_with_files(database, seller, box, port, store, security="starttls",
                                login=login)  # fmt: skip
        stored = await database.read(lambda conn: mail_store.sender_of(conn, seller.id))
        assert stored is not None and str(stored["password"]).startswith("enc:")
        assert "s3cret-pw" not in str(stored)  # sealed, never in the clear
        # Without trusting the server's certificate: refused, never sent in the clear.
        doubting = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK)
        shown = await until(database, doubting, "failed")
        assert "certificate" in str(shown["reason"]) and not list(inbox.glob("*.eml")), shown
        [invoice] = await all_invoices(database)
        await delivery.resend(database, seller, invoice.id, now=utcnow())
        deliverer = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK,
                                  tls=trusting)  # fmt: skip
        await until(database, deliverer, "sent")
    assert len(list(inbox.glob("*.eml"))) == 1


async def test_implicit_tls_is_used(database: Database, tmp_path: Path) -> None:
    seller, box, store = await setup(database, tmp_path)
    port, inbox = free_port(), tmp_path / "inbox"
    inbox.mkdir()
    cert, key = self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=str(cert))
    with smtp_server(port, inbox, tls=(cert, key), mode="--tls"):
        await issued_with_files(database, seller, box, port, store, security="tls")
        deliverer = MailDeliverer(database, store, lambda: box, LOOPBACK, utcnow, config=QUICK,
                                  tls=trusting)  # fmt: skip
        await until(database, deliverer, "sent")
    assert len(list(inbox.glob("*.eml"))) == 1
