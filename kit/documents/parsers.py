"""Read documents into sections: plain text, Markdown, HTML, PDF, DOCX and ODT.

A :class:`Section` is a run of text with its page number (PDF) or its heading path (the titles
above it, outermost first). Parsers are well-kept, permissively licensed libraries where one is
needed: pypdf (BSD) for PDF, python-docx (MIT) for DOCX; HTML uses the standard library's
``html.parser`` and ODT is read straight from its ``content.xml`` with ``zipfile`` and
``xml.etree`` (no extra dependency). A file that cannot be read raises
:class:`~kit.errors.DocumentError` naming the file and what to do.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from kit.errors import DocumentError

MAX_XML_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Section:
    """A run of text, with where it sits in the document."""

    text: str
    page: int | None = None
    heading: tuple[str, ...] = ()


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v\u00a0]+", " ", text)
    return re.sub(r"\n[ \n]*\n", "\n\n", text).strip()


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise DocumentError(f"{path}: looks like a binary file, not text. Convert it to PDF, DOCX, ODT or text.",
                            reason="not_text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class _Outline:
    """Builds sections from a stream of headings and text blocks."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.buffer: list[str] = []

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        self.flush()
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, title))

    def text(self, block: str) -> None:
        if block.strip():
            self.buffer.append(block)

    def flush(self) -> None:
        text = _clean("\n\n".join(self.buffer))
        self.buffer = []
        if text:
            self.sections.append(Section(text, None, tuple(t for _, t in self.path)))

    def done(self) -> list[Section]:
        self.flush()
        return self.sections


def parse_text(path: Path) -> list[Section]:
    text = _clean(_decode(path))
    return [Section(text)] if text else []


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def parse_markdown(path: Path) -> list[Section]:
    outline = _Outline()
    lines = _decode(path).replace("\r\n", "\n").split("\n")
    block: list[str] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            block.append(line)
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        atx = None if fenced else _ATX.match(line)
        if atx:
            outline.text("\n".join(block))
            block = []
            outline.heading(len(atx.group(1)), atx.group(2))
        elif not fenced and line.strip() and not block and re.fullmatch(r" {0,3}(=+|-+)[ \t]*", nxt):
            outline.heading(1 if nxt.strip()[0] == "=" else 2, line)
        elif not fenced and re.fullmatch(r" {0,3}(=+|-+)[ \t]*", line) and outline.path and not block:
            continue  # the underline of a setext heading
        elif not line.strip() and not fenced:
            outline.text("\n".join(block))
            block = []
        else:
            block.append(line)
    outline.text("\n".join(block))
    return outline.done()


class _HTMLSections(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head", "svg", "nav"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol", "pre", "blockquote",
             "dd", "dt", "header", "footer", "main", "aside", "figure", "figcaption", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = _Outline()
        self.skipping = 0
        self.level = 0
        self.title: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.outline.text("".join(self.parts))
            self.parts = []
            self.level = int(tag[1])
        elif tag in self.BLOCK:
            self.parts.append("\n\n" if tag not in ("br", "li", "tr") else "\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self.level:
            self.outline.heading(self.level, "".join(self.title))
            self.title, self.level = [], 0
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        (self.title if self.level else self.parts).append(data)

    def sections(self) -> list[Section]:
        self.outline.text("".join(self.parts))
        return self.outline.done()


def parse_html(path: Path) -> list[Section]:
    parser = _HTMLSections()
    parser.feed(_decode(path))
    parser.close()
    return parser.sections()


def parse_pdf(path: Path) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    with path.open("rb") as fh:
        if b"%PDF-" not in fh.read(1024):
            raise DocumentError(f"{path}: not a PDF file (no PDF header). Check the file or its extension.",
                                reason="wrong_format")
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise DocumentError(f"{path}: encrypted PDF ({exc}). Save an unprotected copy and ingest it.",
                                    reason="encrypted") from exc
            if not opened:
                raise DocumentError(f"{path}: encrypted PDF with a password. Save an unprotected copy "
                                    "(for example `qpdf --decrypt`) and ingest that.", reason="encrypted")
        if len(reader.pages) == 0:
            raise DocumentError(f"{path}: damaged PDF (no pages found). Open and save it again, or export a new PDF.",
                                reason="damaged")
        pages = [Section(_clean(page.extract_text() or ""), number) for number, page in enumerate(reader.pages, 1)]
    except FileNotDecryptedError as exc:
        raise DocumentError(f"{path}: encrypted PDF ({exc}). Save an unprotected copy and ingest it.",
                            reason="encrypted") from exc
    except PdfReadError as exc:
        raise DocumentError(f"{path}: damaged PDF ({exc}). Open and save it again, or export a new PDF.",
                            reason="damaged") from exc
    sections = [s for s in pages if s.text]
    if not sections and pages:
        raise DocumentError(f"{path}: the PDF has no text layer (a scan?). Run OCR on it (for example "
                            "`ocrmypdf`) and ingest the result.", reason="no_text")
    return sections


_DOCX_HEADING = re.compile(r"(?:heading|titre|überschrift|titolo)\s*(\d)", re.IGNORECASE)


def _docx_blocks(document: Any) -> Iterator[tuple[int, str]]:
    """(heading level or 0, text) for each paragraph and table row of a DOCX body, in order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            name = paragraph.style.name if paragraph.style is not None else ""
            match = _DOCX_HEADING.search(name or "")
            level = int(match.group(1)) if match else (1 if name in ("Title", "Titre") else 0)
            yield level, paragraph.text
        elif tag == "tbl":
            for row in Table(child, document).rows:
                cells: list[str] = []
                for cell in row.cells:
                    if not cells or cells[-1] != cell.text:
                        cells.append(cell.text)
                yield 0, " | ".join(c.strip() for c in cells)


def parse_docx(path: Path) -> list[Section]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    if not zipfile.is_zipfile(path):
        raise DocumentError(f"{path}: not a readable DOCX (encrypted with a password, or damaged). "
                            "Save an unprotected copy in Word or LibreOffice and ingest that.", reason="damaged")
    try:
        document = docx.Document(str(path))
        outline = _Outline()
        for level, text in _docx_blocks(document):
            if level:
                outline.heading(level, text)
            else:
                outline.text(text)
        return outline.done()
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise DocumentError(f"{path}: damaged DOCX ({exc}). Open and save it again, then ingest it.",
                            reason="damaged") from exc


_ODF = {
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
}


def _odf_text(element: ElementTree.Element) -> str:
    """The text of an ODF paragraph, with spaces, tabs and line breaks restored."""
    parts: list[str] = [element.text or ""]
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        if name == "s":
            parts.append(" " * int(child.get(f"{{{_ODF['text']}}}c", "1")))
        elif name == "tab":
            parts.append("\t")
        elif name == "line-break":
            parts.append("\n")
        elif name not in ("note", "annotation"):
            parts.append(_odf_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _odf_walk(element: ElementTree.Element, outline: _Outline) -> None:
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        if child.tag == f"{{{_ODF['text']}}}h":
            outline.heading(int(child.get(f"{{{_ODF['text']}}}outline-level", "1")), _odf_text(child))
        elif child.tag == f"{{{_ODF['text']}}}p":
            outline.text(_odf_text(child))
        elif child.tag == f"{{{_ODF['table']}}}table-row":
            cells = [" ".join(_odf_text(p) for p in cell.iter(f"{{{_ODF['text']}}}p"))
                     for cell in child if cell.tag.endswith("}table-cell")]
            outline.text(" | ".join(c.strip() for c in cells if c.strip()))
        elif name not in ("tracked-changes", "sequence-decls", "variable-decls"):
            _odf_walk(child, outline)


def parse_odt(path: Path) -> list[Section]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            manifest = archive.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in names else b""
            if b"encryption-data" in manifest:
                raise DocumentError(f"{path}: encrypted ODT (password-protected). Save an unprotected copy "
                                    "in LibreOffice and ingest that.", reason="encrypted")
            if "content.xml" not in names:
                raise DocumentError(f"{path}: damaged ODT (no content.xml). Open and save it again.", reason="damaged")
            if archive.getinfo("content.xml").file_size > MAX_XML_BYTES:
                raise DocumentError(f"{path}: content.xml is larger than {MAX_XML_BYTES >> 20} MiB; split the file.",
                                    reason="too_large")
            content = archive.read("content.xml")
    except zipfile.BadZipFile as exc:
        raise DocumentError(f"{path}: damaged ODT ({exc}). Open and save it again, then ingest it.",
                            reason="damaged") from exc
    if b"<!DOCTYPE" in content[:4096] or b"<!ENTITY" in content:
        raise DocumentError(f"{path}: content.xml declares entities, which ODT never needs; the file is refused.",
                            reason="damaged")
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise DocumentError(f"{path}: damaged ODT ({exc}). Open and save it again, then ingest it.",
                            reason="damaged") from exc
    outline = _Outline()
    body = root.find(f"{{{_ODF['office']}}}body")
    _odf_walk(body if body is not None else root, outline)
    return outline.done()


PARSERS: dict[str, Callable[[Path], list[Section]]] = {
    ".txt": parse_text, ".text": parse_text,
    ".md": parse_markdown, ".markdown": parse_markdown,
    ".html": parse_html, ".htm": parse_html,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".odt": parse_odt,
}


def supported(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARSERS


def parse(path: str | Path) -> list[Section]:
    """Sections of a document; raises :class:`DocumentError` when it cannot be read or holds no text."""
    file = Path(path)
    parser = PARSERS.get(file.suffix.lower())
    if parser is None:
        raise DocumentError(f"{file}: unsupported type {file.suffix or '(no extension)'!r}. Convert it to "
                            f"one of {', '.join(sorted(PARSERS))} and ingest it again.", reason="unsupported")
    try:
        sections = parser(file)
    except DocumentError:
        raise
    except OSError as exc:
        raise DocumentError(f"{file}: cannot be read ({exc.strerror or exc}). "
                            "Check it exists and is readable.", reason="unreadable") from exc
    except Exception as exc:  # a damaged file can make any third-party parser fail in its own way
        raise DocumentError(f"{file}: damaged or unreadable {file.suffix} file ({type(exc).__name__}: {exc}). "
                            "Open and save it again, then ingest it.", reason="damaged") from exc
    if not sections:
        raise DocumentError(f"{file}: no text found. Check the file is not empty or a scanned image.", reason="no_text")
    return sections
