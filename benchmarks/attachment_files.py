"""Files for the attachment tests and benchmark (benchmarks/attachments.py): text PDFs written by hand, scanned
pages rendered from known text with Pillow (DejaVu or Liberation fonts), an encrypted PDF (pypdf), a damaged one."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"]


def nir() -> str:
    """A valid French social security number (NIR), key included, spaced as people write it."""
    body = "1841275115042"
    return f"1 84 12 75 115 042 {97 - int(body) % 97:02d}"


def text_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with a text layer: one Helvetica page per entry (lines split on \\n)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        page_no, content_no = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{page_no} 0 R")
        lines = []
        for line in text.split("\n"):
            escaped = line.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
            lines.append(b"(" + escaped + b") Tj T*")
        stream = b"BT /F1 10 Tf 12 TL 50 780 Td " + b" ".join(lines) + b" ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_no} 0 R "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def wrapped(text: str, width: int = 95) -> str:
    return "\n".join(line for para in text.split("\n") for line in (textwrap.wrap(para, width) or [""]))


def page_image(text: str, dpi: int = 300, width_chars: int = 60) -> object:
    """A white A4-wide page with ``text`` in black, 12 pt at ``dpi`` (a Pillow image)."""
    from PIL import Image, ImageDraw, ImageFont

    font_path = next(f for f in FONTS if Path(f).exists())
    size = round(12 * dpi / 72)
    font = ImageFont.truetype(font_path, size)
    lines = [ln for para in text.split("\n") for ln in (textwrap.wrap(para, width_chars) or [""])]
    width = round(8.27 * dpi)
    height = max(round(2 * dpi), round(1.5 * size * (len(lines) + 4)))
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    y = size * 2
    for line in lines:
        draw.text((round(0.8 * dpi), y), line, font=font, fill=0)
        y += round(size * 1.5)
    return image


def scanned_pdf(pages: list[str], dpi: int = 300) -> bytes:
    """A PDF of page images, no text layer: what a scanner makes."""
    images = [page_image(t, dpi) for t in pages]
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=dpi, save_all=True, append_images=images[1:])  # type: ignore[attr-defined]
    return out.getvalue()


def png(text: str, dpi: int = 300) -> bytes:
    out = io.BytesIO()
    page_image(text, dpi).save(out, "PNG", dpi=(dpi, dpi))  # type: ignore[attr-defined]
    return out.getvalue()


def encrypted_pdf(pages: list[str], password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(pages))))
    writer.encrypt(user_password=password, owner_password=password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def damaged_pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\n\x00\x01garbage" + bytes(range(256)) * 4


FRENCH_PAGES = [
    "Note de service n° 2024-17. Objet : organisation des congés d'été. Les agents déposent leurs demandes "
    "avant le 15 avril ; le chef de service répond sous huit jours. Une demande refusée est motivée par écrit.",
    "Astreintes. Une semaine d'astreinte est indemnisée 159,20 euros ; une nuit isolée, 10,75 euros. Le planning "
    "est publié le premier lundi du mois par le secrétariat général, bâtiment B, deuxième étage.",
    "Stationnement. Le badge de parking du personnel est délivré par le service logistique, sur demande écrite "
    "visée par le responsable hiérarchique. Il est rendu au départ de l'agent.",
    "Formation. Chaque agent dispose de cinq jours de formation par an. Les inscriptions se font sur l'intranet ; "
    "la liste des sessions est mise à jour chaque trimestre par le bureau des ressources humaines.",
    "Télétravail. Deux jours par semaine au plus, sur accord écrit. L'agent doit rester joignable aux heures de "
    "service et signaler toute panne du matériel à l'assistance informatique au poste 4500.",
    "Restauration. Le restaurant administratif ouvre de 11 h 30 à 14 h. Le prix du repas est de 4,80 euros pour "
    "les agents de catégorie C et de 6,10 euros pour les autres catégories.",
]


def long_pages(n: int) -> list[str]:
    """``n`` pages of French text, each about 1,500 characters, cycling over FRENCH_PAGES."""
    out = []
    for i in range(n):
        base = FRENCH_PAGES[i % len(FRENCH_PAGES)]
        out.append(wrapped(f"Page {i + 1}. " + " ".join([base] * 6)))
    return out
