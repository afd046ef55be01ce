"""Reading an invoice's files as a receiver would: pypdf for the PDF's text, zbar (`zbarimg`,
Debian zbar-tools) on a poppler rendering (`pdftoppm`) for the QR code, lxml for the XSD."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

from lxml import etree
from pypdf import PdfReader

XSD = Path(__file__).resolve().parents[1] / "docs" / "schemas" / "einvoice.xsd"


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def pdf_fonts_embedded(content: bytes) -> list[str]:
    """The names of the fonts the first page uses, each checked to carry its font file."""
    page = PdfReader(io.BytesIO(content)).pages[0]
    names = []
    for font in page["/Resources"]["/Font"].values():  # type: ignore[index]
        font = font.get_object()
        descriptor = font["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, f"{font['/BaseFont']} is not embedded"
        names.append(str(font["/BaseFont"]))
    return names


def qr_codes(content: bytes) -> list[str]:
    """Every QR code zbar finds on the PDF's first page rendered at 150 dpi."""
    with tempfile.TemporaryDirectory() as scratch:
        pdf = Path(scratch) / "invoice.pdf"
        pdf.write_bytes(content)
        subprocess.run(["pdftoppm", "-r", "150", "-f", "1", "-l", "1", "-png", str(pdf),
                        str(Path(scratch) / "page")], check=True)  # fmt: skip
        png = next(Path(scratch).glob("page*.png"))
        found = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sqrcode.enable", str(png)],
                               capture_output=True, text=True, check=False)  # fmt: skip
    return [line for line in found.stdout.splitlines() if line]


def valid_xml(content: bytes) -> etree._Element:
    """The parsed XML; AssertionError naming the first schema error if it does not validate."""
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    root = etree.fromstring(content)
    assert schema.validate(root), schema.error_log.last_error
    return root
