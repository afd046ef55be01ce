"""Delivering an invoice's files to its buyer by email: a seller's sender settings, the message,
and re-sending.

A seller's SMTP password is stored sealed (`services/secrets.py`: encrypted under the
deployment's key, or an `env:NAME` reference), never in the clear and never shown. The message
goes from the seller's sender address to the buyer's `email`, with the PDF and the XML attached
under the invoice number's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from kaipiao.domain.sellers import Seller
from kaipiao.platform.smtp import SECURITY, SmtpAccount
from kaipiao.services.errors import Conflict, NotFound, ServiceError
from kaipiao.services.files import FilesNotReady
from kaipiao.services.invoices import get_invoice
from kaipiao.services.secrets import SecretBox, SecretError
from kaipiao.store import mail as repo
from kaipiao.store import sellers as seller_store
from kaipiao.store.database import Database
from kaipiao.store.records import StoredInvoice

TITLES = {"special": "电子发票（增值税专用发票）", "normal": "电子发票（普通发票）"}


@dataclass(frozen=True, slots=True)
class MailSender:
    """What a seller sets: its SMTP server and sender address."""

    host: str
    port: int
    security: str
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def sender_settings(sender: MailSender, box: SecretBox) -> dict[str, object]:
    """What to store: the password sealed; ServiceError `invalid_mail_sender` if unusable."""
    if sender.security not in SECURITY:
        raise ServiceError(f"security is one of {', '.join(SECURITY)}", "invalid_mail_sender")
    if not 0 < sender.port < 65536 or not sender.host or "@" not in sender.sender:
        raise ServiceError("a mail sender needs a host, a port and a sender address",
                           "invalid_mail_sender")  # fmt: skip
    try:
        sealed = box.seal(sender.password) if sender.password else None
    except SecretError as exc:
        raise ServiceError(str(exc), "invalid_mail_sender") from None
    return {"host": sender.host, "port": sender.port, "security": sender.security,
            "sender": sender.sender, "username": sender.username, "password": sealed}  # fmt: skip


async def set_mail_sender(
    db: Database, box: SecretBox, seller_id: str, sender: MailSender, *, now: datetime
) -> None:
    """Set (replace) the seller's SMTP sender."""
    stored = sender_settings(sender, box)
    await db.write(lambda conn: repo.set_sender(conn, seller_id, stored, now))


async def set_mail_sender_of(
    db: Database, box: SecretBox, tax_id: str, sender: MailSender, *, now: datetime
) -> str:
    """`set_mail_sender` for the seller with `tax_id`; its id. NotFound if there is none."""
    seller = await db.read(lambda conn: seller_store.find_seller_by_tax_id(conn, tax_id))
    if seller is None:
        raise NotFound(f"no seller with tax id {tax_id}")
    await set_mail_sender(db, box, seller.id, sender, now=now)
    return seller.id


def smtp_account(stored: Mapping[str, object], box: SecretBox,
                 environ: Mapping[str, str]) -> SmtpAccount:  # fmt: skip
    """The usable account; SecretError if its password cannot be opened (never shown)."""
    password = stored.get("password")
    return SmtpAccount(
        host=str(stored["host"]), port=int(str(stored["port"])),
        security=str(stored["security"]), sender=str(stored["sender"]),
        username=str(stored["username"]) if stored.get("username") else None,
        password=box.open(str(password), environ, "the SMTP password") if password else None,
    )  # fmt: skip


def compose(
    invoice: StoredInvoice, seller_name: str, sender: str, files: Mapping[str, bytes]
) -> EmailMessage:
    """The message to the buyer: a short text and the invoice's files attached."""
    number = invoice.invoice_number or invoice.id
    title = TITLES.get(invoice.invoice_type, TITLES["normal"])
    message = EmailMessage()
    message["From"] = formataddr((seller_name, sender))
    message["To"] = str(invoice.buyer["email"])
    message["Subject"] = f"【{title}】{seller_name} 发票号码 {number}"
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        f"{invoice.buyer.get('name', '')}：\n\n{seller_name}为您开具的{title}"
        f"（发票号码 {number}，价税合计 ¥{invoice.total}）见附件 PDF 与 XML。\n"
    )
    for kind, subtype in (("pdf", "pdf"), ("xml", "xml")):
        message.add_attachment(files[kind], maintype="application", subtype=subtype,
                               filename=f"{number}.{kind}")  # fmt: skip
    return message


async def resend(db: Database, seller: Seller, invoice_id: str, *, now: datetime) -> StoredInvoice:
    """Send the invoice's files to its buyer again (from `pending`, attempts reset);
    FilesNotReady before its files are stored, Conflict `no_buyer_email` without an address."""
    invoice = await get_invoice(db, seller, invoice_id)
    if not invoice.files:
        raise FilesNotReady(f"the files of invoice {invoice_id} are not stored yet")
    if not invoice.buyer.get("email"):
        raise Conflict("the invoice's buyer has no email address", "no_buyer_email")
    await db.write(lambda conn: repo.enqueue(conn, invoice, now))
    return await get_invoice(db, seller, invoice_id)
