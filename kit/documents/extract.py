"""The text of one attached file, page by page: txt, md, html, docx and odt through the document parsers
(:mod:`kit.documents.parsers`), PDF page by page with OCR for the pages that have no text layer, and PNG, JPEG
and TIFF images (each frame a page) through OCR. A file that cannot be read raises
:class:`~kit.errors.AttachmentError` naming it as it was sent (never a temporary path), in English and French.

Formats without pages (text, Markdown, HTML, DOCX, ODT) are cut into parts of about :data:`PART_CHARS`
characters at paragraph boundaries; such a part is what "page" means for them.
"""

from __future__ import annotations

import io
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kit.errors import AttachmentError, DocumentError

PART_CHARS = 3000
MIN_TEXT_LAYER = 16  # fewer characters than this on a PDF page holding an image: a scan, read by OCR
IMAGE_TYPES = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff", "tiff": b"II*\x00", "tiff-be": b"MM\x00*"}
TEXT_TYPES = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
              ".docx": "docx", ".odt": "odt", ".pdf": "pdf", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg",
              ".tif": "tiff", ".tiff": "tiff"}


@dataclass(frozen=True)
class Page:
    number: int
    text: str
    ocr: bool = False


@dataclass
class Extracted:
    kind: str  # txt, md, html, pdf, docx, odt, png, jpeg, tiff
    pages: list[Page] = field(default_factory=list)

    @property
    def ocr_pages(self) -> int:
        return sum(1 for p in self.pages if p.ocr)


@dataclass(frozen=True)
class OcrOptions:
    enabled: bool = True
    languages: str = "fra+eng"
    dpi: int = 300
    timeout_s: float = 120
    workers: int = 2


def kind_of(name: str, data: bytes) -> str:
    """The file's type from its first bytes (PDF, images), else from its extension."""
    if data[:1024].find(b"%PDF-") >= 0:
        return "pdf"
    for kind, magic in IMAGE_TYPES.items():
        if data.startswith(magic):
            return kind.removesuffix("-be")
    by_name = TEXT_TYPES.get(Path(name).suffix.lower())
    if by_name is None or by_name in ("pdf", "png", "jpeg", "tiff"):
        raise AttachmentError(
            f"{name}: unsupported or unrecognised file type. Send a PDF, DOCX, ODT, text, Markdown or HTML file, "
            f"or a PNG, JPEG or TIFF image. / {name} : type de fichier non pris en charge. Envoyez un PDF, DOCX, "
            "ODT, texte, Markdown, HTML, ou une image PNG, JPEG ou TIFF.")
    return by_name


def damaged(name: str, reason: str) -> AttachmentError:
    protected = "encrypt" in reason.lower() or "password" in reason.lower()
    french = ("protégé par un mot de passe : enregistrez-en une copie non protégée et joignez-la" if protected
              else "endommagé ou illisible : ouvrez-le, enregistrez-le à nouveau et joignez-le")
    return AttachmentError(f"{name}: {reason} / {name} : fichier {french}.")


def parts(text: str, number: int = 1) -> list[Page]:
    """``text`` cut at paragraph (else line, else word) boundaries into pages of about PART_CHARS characters."""
    out: list[Page] = []
    current = ""
    for block in text.split("\n\n"):
        while len(block) > PART_CHARS:  # one very long paragraph: cut at a line or a space
            cut = max(block.rfind("\n", 0, PART_CHARS), block.rfind(" ", 0, PART_CHARS))
            cut = cut if cut > PART_CHARS // 2 else PART_CHARS
            head, block = block[:cut], block[cut:].lstrip()
            if current:
                out.append(Page(number + len(out), current))
                current = ""
            out.append(Page(number + len(out), head))
        if current and len(current) + len(block) + 2 > PART_CHARS:
            out.append(Page(number + len(out), current))
            current = ""
        current = f"{current}\n\n{block}" if current else block
    if current.strip():
        out.append(Page(number + len(out), current))
    return out


def _ocr_many(images: list[tuple[int, bytes]], options: OcrOptions, dpi: int | None) -> dict[int, str]:
    from kit.documents import ocr

    ocr.require(options.languages)  # one clear error before any work
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        texts = pool.map(lambda item: ocr.read_image(item[1], options.languages, dpi=dpi,
                                                     timeout_s=options.timeout_s), images)
        return {number: text for (number, _), text in zip(images, texts, strict=True)}


def _clean(text: str) -> str:
    from kit.documents.parsers import _clean as clean

    return clean(text)


def read_images(name: str, data: bytes, options: OcrOptions, max_pages: int) -> list[Page]:
    """Each frame of an image, read by OCR."""
    from PIL import Image, UnidentifiedImageError

    if not options.enabled:
        raise AttachmentError(f"{name}: an image needs OCR, which is turned off here (attachments.ocr). / {name} : "
                              "une image doit être lue par OCR, désactivée ici.")
    try:
        image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        if frames > max_pages:
            raise too_many_pages(name, frames, max_pages)
        pngs = []
        for n in range(frames):
            image.seek(n)
            out = io.BytesIO()
            image.convert("L").save(out, "PNG", dpi=image.info.get("dpi", (300, 300)))
            pngs.append((n + 1, out.getvalue()))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise damaged(name, f"damaged or unreadable image ({exc}).") from exc
    texts = _ocr_many(pngs, options, None)
    return [Page(n, _clean(texts[n]), True) for n, _ in pngs]


def too_many_pages(name: str, pages: int, limit: int) -> AttachmentError:
    return AttachmentError(f"{name}: {pages} pages, more than the {limit} allowed (attachments.max_pages): send the "
                           f"part you need. / {name} : {pages} pages, plus que les {limit} permises : envoyez la "
                           "partie utile.")


def _page_images(page: object) -> bytes | None:
    """The largest image a PDF page holds, as PNG (None when it holds none that can be decoded)."""
    best: tuple[int, bytes] | None = None
    try:
        for image in page.images:  # type: ignore[attr-defined]
            pil = image.image
            if pil is None:
                continue
            out = io.BytesIO()
            pil.convert("L").save(out, "PNG")
            size = pil.width * pil.height
            if best is None or size > best[0]:
                best = (size, out.getvalue())
    except Exception:  # noqa: BLE001 - an image codec pypdf cannot decode: the page is then rendered, or left out
        return None
    return best[1] if best else None


def _open_pdf(name: str, data: bytes) -> object:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError, FileNotDecryptedError) as exc:
                raise damaged(name, f"encrypted PDF ({exc}): save an unprotected copy and attach it.") from exc
            if not opened:
                raise damaged(name, "encrypted PDF, protected by a password: save an unprotected copy (for example "
                                    "`qpdf --decrypt`) and attach it.")
        if len(reader.pages) == 0:
            raise damaged(name, "damaged PDF (no pages found): open and save it again, or export a new PDF.")
    except (PdfReadError, FileNotDecryptedError) as exc:
        raise damaged(name, f"damaged PDF ({exc}): open and save it again, or export a new PDF.") from exc
    return reader


def read_pdf(name: str, data: bytes, options: OcrOptions, max_pages: int) -> list[Page]:
    """Each page's text layer; the pages without one are read by OCR (rendered by pdftoppm, else their image)."""
    from kit.documents import ocr

    reader = _open_pdf(name, data)
    pages = reader.pages  # type: ignore[attr-defined]
    if len(pages) > max_pages:
        raise too_many_pages(name, len(pages), max_pages)
    texts: dict[int, str] = {}
    scans: list[int] = []
    try:
        for number, page in enumerate(pages, 1):
            text = _clean(page.extract_text() or "")
            if len(text) < MIN_TEXT_LAYER and ("/XObject" in str(page.get("/Resources", {})) or not text):
                scans.append(number)
            texts[number] = text
    except Exception as exc:  # noqa: BLE001 - pypdf fails in its own ways on a damaged file
        raise damaged(name, f"damaged PDF ({type(exc).__name__}: {exc}): open and save it again.") from exc
    ocr_done: dict[int, str] = {}
    if scans and options.enabled:
        images: list[tuple[int, bytes]] = []
        with tempfile.NamedTemporaryFile(suffix=".pdf") as tmp:  # created 0600
            tmp.write(data)
            tmp.flush()
            for number in scans:
                image = ocr.render_pdf_page(tmp.name, number, options.dpi, options.timeout_s) \
                    or _page_images(pages[number - 1])
                if image is not None:
                    images.append((number, image))
        ocr_done = {n: _clean(t) for n, t in _ocr_many(images, options, options.dpi).items()} if images else {}
    return [Page(n, ocr_done.get(n, texts[n]), n in ocr_done) for n in texts]


def _parsed(name: str, data: bytes, kind: str) -> str:
    """The text of a txt, md, html, docx or odt file, headings kept as lines of their own."""
    from kit.documents.parsers import PARSERS

    suffix = {"txt": ".txt", "md": ".md", "html": ".html", "docx": ".docx", "odt": ".odt"}[kind]
    with tempfile.TemporaryDirectory(prefix="kit-file-") as work:
        path = Path(work) / f"file{suffix}"
        path.write_bytes(data)
        try:
            sections = PARSERS[suffix](path)
        except DocumentError as exc:
            raise damaged(name, str(exc).replace(str(path), "").lstrip(": ")) from exc
        except Exception as exc:  # noqa: BLE001 - a damaged file can make any third-party parser fail in its own way
            raise damaged(name, f"damaged or unreadable {kind} file ({type(exc).__name__}).") from exc
    blocks: list[str] = []
    last: tuple[str, ...] = ()
    for section in sections:
        if section.heading and section.heading != last:
            blocks.append(section.heading[-1])
            last = section.heading
        blocks.append(section.text)
    return "\n\n".join(blocks)


def extract(name: str, data: bytes, options: OcrOptions, max_pages: int) -> Extracted:
    """The pages of one file (see the module docstring); AttachmentError when it cannot be read or holds no
    text, OcrUnavailableError when it needs OCR that cannot run."""
    if not data:
        raise AttachmentError(f"{name}: the file is empty. / {name} : le fichier est vide.")
    kind = kind_of(name, data)
    if kind == "pdf":
        pages = read_pdf(name, data, options, max_pages)
    elif kind in ("png", "jpeg", "tiff"):
        pages = read_images(name, data, options, max_pages)
    else:
        pages = parts(_parsed(name, data, kind))
        if len(pages) > max_pages:
            raise too_many_pages(name, len(pages), max_pages)
    if not any(p.text.strip() for p in pages):
        hint = " The scanned pages could not be read: OCR is turned off (attachments.ocr)." if (
            kind == "pdf" and not options.enabled) else ""
        raise AttachmentError(f"{name}: no text found in it.{hint} Check the file is not empty or blank. / {name} : "
                              "aucun texte trouvé. Vérifiez que le fichier n'est pas vide.")
    return Extracted(kind, pages)
