"""An issued invoice's PDF, laid out like a 数电 invoice, with the CJK font embedded.

reportlab draws it (decision 0009: maintained since 2000, embeds a subset of a TrueType font
from a .ttc collection, and `invariant` output makes the same invoice give the same bytes). The
font is WenQuanYi Micro Hei from Debian's fonts-wqy-microhei (installed by `scripts/services`):
only the glyphs used are embedded, ~20–40 KiB a file; the built-in non-embedded CID fonts would
leave the invoice's look to the reader's fonts, which an archive may not have. The QR code is
drawn as vector squares from segno's matrix (error correction M), 20 mm wide.

Layout (one page up to `FIRST_PAGE_LINES` lines; further lines go on continuation pages, as a
销货清单 would): title, number and date at the top right, QR at the top left; buyer and seller
blocks; the item table with its totals; 价税合计 in words and figures; remarks; the issuer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import segno
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from kaipiao.sandbox.sheet import Sheet, SheetLine

FONT_NAME = "WenQuanYiMicroHei"
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc"),
)
PAGE = (240 * mm, 150 * mm)
FIRST_PAGE_LINES = 8
MORE_PAGE_LINES = 22
BROWN = (0.55, 0.25, 0.1)
# Column left edges (mm) and headers of the item table.
COLUMNS = ((10, "项目名称"), (78, "规格型号"), (102, "单位"), (114, "数量"), (134, "单价"),
           (158, "金额"), (184, "税率/征收率"), (206, "税额"))  # fmt: skip


class FontMissing(RuntimeError):
    """No CJK font to embed: install fonts-wqy-microhei (scripts/services)."""


def _font() -> str:
    if FONT_NAME in pdfmetrics.getRegisteredFontNames():
        return FONT_NAME
    for path in FONT_PATHS:
        if path.exists():
            pdfmetrics.registerFont(TTFont(FONT_NAME, str(path), subfontIndex=0))
            return FONT_NAME
    raise FontMissing("no CJK font found: install fonts-wqy-microhei")


def _qr(canvas: Canvas, payload: str, x: float, y: float, size: float) -> None:
    code = segno.make_qr(payload, error="m")
    matrix = [list(row) for row in code.matrix]
    cell = size / len(matrix)
    canvas.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                canvas.rect(x + c * cell, y + size - (r + 1) * cell, cell, cell, 0, 1)


def _text(canvas: Canvas, x: float, y: float, text: str, size: float = 9) -> None:
    canvas.setFont(FONT_NAME, size)
    canvas.drawString(x * mm, y * mm, text)


def _line_cells(line: SheetLine) -> tuple[str, ...]:
    return (line.name[:24], line.spec or "", line.unit or "", line.quantity or "",
            line.unit_price or "", f"{line.amount:.2f}", line.tax_rate,
            f"{line.tax:.2f}")  # fmt: skip


def _rows(canvas: Canvas, lines: Sequence[SheetLine], top: float) -> None:
    canvas.setFillColorRGB(*BROWN)
    for x, header in COLUMNS:
        _text(canvas, x, top, header, 8)
    canvas.setFillColorRGB(0, 0, 0)
    for index, line in enumerate(lines, start=1):
        for (x, _), cell in zip(COLUMNS, _line_cells(line), strict=True):
            _text(canvas, x, top - 5 * index, cell, 8)


def _head(canvas: Canvas, sheet: Sheet) -> None:
    width, height = PAGE
    canvas.setFillColorRGB(*BROWN)
    canvas.setFont(FONT_NAME, 16)
    canvas.drawCentredString(width / 2, height - 16 * mm, sheet.title)
    canvas.setLineWidth(0.6)
    canvas.line(width / 2 - 45 * mm, height - 18 * mm, width / 2 + 45 * mm, height - 18 * mm)
    if sheet.kind == "red":
        _text(canvas, 95, 126, "红字发票", 10)
    canvas.setFillColorRGB(0, 0, 0)
    _text(canvas, 172, 136, f"发票号码：{sheet.number}")
    _text(canvas, 172, 130, f"开票日期：{sheet.local_time:%Y年%m月%d日}")
    _qr(canvas, sheet.qr_payload, 8 * mm, height - 28 * mm, 20 * mm)


def _parties(canvas: Canvas, sheet: Sheet) -> None:
    canvas.setStrokeColorRGB(*BROWN)
    canvas.rect(8 * mm, 96 * mm, 224 * mm, 22 * mm)
    canvas.line(120 * mm, 96 * mm, 120 * mm, 118 * mm)
    blocks = ((10, "购买方信息", sheet.buyer_name, sheet.buyer_tax_id or ""),
              (122, "销售方信息", sheet.seller_name, sheet.seller_tax_id))  # fmt: skip
    for x, label, name, tax_id in blocks:
        canvas.setFillColorRGB(*BROWN)
        _text(canvas, x, 113, label, 8)
        canvas.setFillColorRGB(0, 0, 0)
        _text(canvas, x, 106, f"名称：{name}")
        _text(canvas, x, 100, f"统一社会信用代码/纳税人识别号：{tax_id}", 8)


def _totals(canvas: Canvas, sheet: Sheet) -> None:
    canvas.rect(8 * mm, 22 * mm, 224 * mm, 74 * mm)
    _text(canvas, 10, 36, "合　　计")
    _text(canvas, 158, 36, f"¥{sheet.total_amount:.2f}")
    _text(canvas, 206, 36, f"¥{sheet.total_tax:.2f}")
    canvas.line(8 * mm, 31 * mm, 232 * mm, 31 * mm)
    _text(canvas, 10, 25, f"价税合计（大写）　{sheet.total_in_words}")
    _text(canvas, 158, 25, f"（小写）¥{sheet.total:.2f}")
    _text(canvas, 10, 15, f"备注：{sheet.remark}"[:90], 8)
    _text(canvas, 10, 7, f"开票人：沙箱　　　销售方：{sheet.seller_name}", 8)


def invoice_pdf(sheet: Sheet) -> bytes:
    """The PDF file of `sheet`: the same sheet gives the same bytes."""
    _font()
    out = io.BytesIO()
    # The initial font is ours, so no base-14 font (Helvetica) is named in the file at all.
    fonts: dict[str, Any] = {"initialFontName": FONT_NAME}  # the stubs type it as a float
    canvas = Canvas(out, pagesize=PAGE, invariant=True, pageCompression=1, **fonts)
    canvas.setTitle(f"{sheet.title} {sheet.number}")
    canvas.setAuthor(sheet.seller_name)
    _head(canvas, sheet)
    _parties(canvas, sheet)
    _rows(canvas, sheet.lines[:FIRST_PAGE_LINES], 90)
    if len(sheet.lines) > FIRST_PAGE_LINES:
        _text(canvas, 10, 45, "（详见销货清单）", 8)
    _totals(canvas, sheet)
    rest = sheet.lines[FIRST_PAGE_LINES:]
    page = 1
    while rest:
        canvas.showPage()
        page += 1
        _text(canvas, 10, 140, f"销货清单　发票号码：{sheet.number}　第{page}页", 10)
        _rows(canvas, rest[:MORE_PAGE_LINES], 130)
        rest = rest[MORE_PAGE_LINES:]
    canvas.showPage()
    canvas.save()
    return out.getvalue()
