"""PDF pages drawn from scratch with pikepdf: text pages (Helvetica, WinAnsi encoding, lines
wrapped, page breaks) and image pages (JPEG as is, PNG and others re-encoded), on A4."""

from __future__ import annotations

import io
import textwrap
import zlib

import pikepdf
from PIL import Image

from caducee.errors import InvalidInput

A4 = (595.0, 842.0)
MARGIN = 50.0
FONT_SIZE = 10.0
LEADING = 14.0
TITLE_SIZE = 14.0
#: Characters per line: Helvetica 10 pt averages about 5 pt a character on 495 pt of text.
WRAP_CHARS = 92
LINES_PER_PAGE = int((A4[1] - 2 * MARGIN) // LEADING) - 2
#: Largest image accepted, in pixels (decompression bombs).
MAX_IMAGE_PIXELS = 40_000_000


def pdf_string(text: str) -> bytes:
    """``text`` as a PDF literal string in WinAnsi (cp1252); unknown characters become "?"."""
    raw = text.encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def wrap(text: str) -> list[str]:
    """``text`` cut into lines that fit the page width (tabs expanded, control chars dropped)."""
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        cleaned = "".join(c for c in paragraph.expandtabs(4) if c.isprintable())
        lines += textwrap.wrap(cleaned, WRAP_CHARS, break_long_words=True) or [""]
    return lines


def _font(pdf: pikepdf.Pdf, bold: bool = False) -> pikepdf.Dictionary:
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name("/Helvetica-Bold" if bold else "/Helvetica"),
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )


def add_text_pages(pdf: pikepdf.Pdf, heading: str, lines: list[str], max_pages: int) -> int:
    """Append pages showing ``heading`` (bold, first page) then ``lines``; returns the number
    of pages added. :class:`InvalidInput` when it would take more than ``max_pages``."""
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    chunks = chunks or [[]]
    if len(chunks) > max_pages:
        raise InvalidInput(
            f"« {heading[:60]} » ferait {len(chunks)} pages : {max_pages} au plus.",
            f"'{heading[:60]}' would take {len(chunks)} pages: at most {max_pages}.",
        )
    resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=_font(pdf), F2=_font(pdf, bold=True)))
    top = A4[1] - MARGIN
    for number, chunk in enumerate(chunks):
        title = f"{heading} ({number + 1}/{len(chunks)})" if number else heading
        ops = [b"BT", b"/F2 %.1f Tf" % TITLE_SIZE, b"%.1f %.1f Td" % (MARGIN, top)]
        ops += [pdf_string(title) + b" Tj", b"/F1 %.1f Tf" % FONT_SIZE, b"%.1f TL" % LEADING]
        ops.append(b"T* T*")
        ops += [pdf_string(line) + b" Tj T*" for line in chunk]
        ops.append(b"ET")
        page = pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, A4[0], A4[1]],
            Resources=resources,
            Contents=pdf.make_stream(b"\n".join(ops)),
        )
        pdf.pages.append(pikepdf.Page(page))
    return len(chunks)


def _image_xobject(pdf: pikepdf.Pdf, data: bytes) -> tuple[pikepdf.Stream, int, int]:
    try:
        image: Image.Image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise InvalidInput(
                f"Image trop grande ({width}×{height} pixels).",
                f"Image too large ({width}×{height} pixels).",
            )
        if image.format == "JPEG" and image.mode in ("RGB", "L"):
            space = pikepdf.Name.DeviceRGB if image.mode == "RGB" else pikepdf.Name.DeviceGray
            stream = pdf.make_stream(data, Filter=pikepdf.Name.DCTDecode)
        else:
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)
            rgb = image.convert("RGB")
            space = pikepdf.Name.DeviceRGB
            stream = pdf.make_stream(zlib.compress(rgb.tobytes()), Filter=pikepdf.Name.FlateDecode)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(
            "Image illisible.", f"Unreadable image ({type(exc).__name__})."
        ) from None
    stream.Type = pikepdf.Name.XObject
    stream.Subtype = pikepdf.Name.Image
    stream.Width, stream.Height = width, height
    stream.ColorSpace = space
    stream.BitsPerComponent = 8
    return stream, width, height


def add_image_page(pdf: pikepdf.Pdf, heading: str, data: bytes) -> None:
    """Append one page showing ``heading`` and the image, scaled to fit, aspect kept."""
    xobject, width, height = _image_xobject(pdf, data)
    box_w, box_h = A4[0] - 2 * MARGIN, A4[1] - 2 * MARGIN - 2 * LEADING
    scale = min(box_w / width, box_h / height, 1.0)
    shown_w, shown_h = width * scale, height * scale
    x, y = MARGIN, A4[1] - MARGIN - 2 * LEADING - shown_h
    content = b"\n".join(
        [
            b"BT /F1 %.1f Tf %.1f %.1f Td " % (FONT_SIZE, MARGIN, A4[1] - MARGIN)
            + pdf_string(heading)
            + b" Tj ET",
            b"q %.2f 0 0 %.2f %.2f %.2f cm /Im1 Do Q" % (shown_w, shown_h, x, y),
        ]
    )
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, A4[0], A4[1]],
        Resources=pikepdf.Dictionary(
            Font=pikepdf.Dictionary(F1=_font(pdf)), XObject=pikepdf.Dictionary(Im1=xobject)
        ),
        Contents=pdf.make_stream(content),
    )
    pdf.pages.append(pikepdf.Page(page))
