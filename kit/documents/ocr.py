"""Optical character recognition with Tesseract (Debian ``tesseract-ocr`` with ``tesseract-ocr-fra`` and
``tesseract-ocr-eng``), run as a program on this machine: an image goes in on its standard input, the text
comes out on its standard output; nothing is written to disk and nothing leaves the machine.

PDF pages without a text layer are rendered to an image first: with ``pdftoppm`` (Debian ``poppler-utils``)
when it is installed, else from the images the page holds (a scanner's PDF holds one image per page).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from kit.errors import OcrUnavailableError

INSTALL_HINT = ("install it: `apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng` (as root). "
                "/ installez-le : `apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng` (en root).")


@dataclass(frozen=True)
class OcrStatus:
    """Whether OCR can run: the program, its version and the languages it has."""

    program: str | None
    version: str
    languages: tuple[str, ...]

    def missing(self, wanted: str) -> list[str]:
        return [lang for lang in wanted.split("+") if lang not in self.languages]


def status() -> OcrStatus:
    program = shutil.which("tesseract")
    if program is None:
        return OcrStatus(None, "", ())
    try:
        version = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)
        langs = subprocess.run([program, "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return OcrStatus(None, "", ())
    first = (version.stdout or version.stderr).strip().splitlines()
    names = [line.strip() for line in langs.stdout.splitlines()[1:] if line.strip()]
    return OcrStatus(program, first[0] if first else "", tuple(names))


def require(languages: str) -> str:
    """The path of ``tesseract`` when it can read ``languages``; else OcrUnavailableError saying what to install."""
    found = status()
    if found.program is None:
        raise OcrUnavailableError("this file has scanned pages or images, which need OCR, and Tesseract is not "
                                  "installed: " + INSTALL_HINT)
    missing = found.missing(languages)
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang}" for lang in missing)
        raise OcrUnavailableError(f"Tesseract has no data for {', '.join(missing)} (attachments.ocr_languages): "
                                  f"`apt-get install {packages}`. / Tesseract n'a pas les données de la langue "
                                  f"{', '.join(missing)} : `apt-get install {packages}`.")
    return found.program


def read_image(image: bytes, languages: str, *, dpi: int | None = None, timeout_s: float = 120) -> str:
    """The text Tesseract reads in one image (PNG, JPEG, TIFF, PNM…)."""
    program = require(languages)
    args = [program, "stdin", "stdout", "-l", languages, "--psm", "3"]
    if dpi:
        args += ["--dpi", str(dpi)]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # pages run side by side, one core each
    try:
        done = subprocess.run(args, input=image, capture_output=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        raise OcrUnavailableError(f"OCR of one page took more than {timeout_s:.0f} s (attachments.ocr_timeout_s): "
                                  "send fewer or lighter pages. / La lecture d'une page a dépassé le temps "
                                  "permis : envoyez moins de pages.") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise OcrUnavailableError(f"Tesseract could not read an image ({message[-1] if message else done.returncode})")
    return done.stdout.decode("utf-8", errors="replace")


def render_pdf_page(path: str, page: int, dpi: int, timeout_s: float = 120) -> bytes | None:
    """Page ``page`` (from 1) of a PDF as a greyscale PNG at ``dpi``, with pdftoppm; None without it."""
    program = shutil.which("pdftoppm")
    if program is None:
        return None
    try:
        done = subprocess.run([program, "-f", str(page), "-l", str(page), "-r", str(dpi), "-gray", "-png",
                               "-singlefile", path], capture_output=True, timeout=timeout_s)  # no output root: stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 and done.stdout else None
