"""One rule for the names of need-to-know groups and of document collections, used by the local users, the
documents library and the upload form alike."""

from __future__ import annotations

import re
import unicodedata

from kit.errors import UsageError

MAX_NAME = 64
# \w is any letter (accents included: équipe, Ørsted), any digit, or '_'; the first character is one of them.
NAME = re.compile(rf"\w[\w.@-]{{0,{MAX_NAME - 1}}}")
FRENCH = {"group": "groupe", "collection": "collection"}


def check_name(kind: str, value: object) -> str:
    """``value`` as a group or collection name (``kind``), in Unicode NFC, surrounding spaces removed; or
    UsageError (HTTP 400, ``param`` = kind) saying what a name may hold."""
    name = unicodedata.normalize("NFC", value.strip()) if isinstance(value, str) else ""
    if NAME.fullmatch(name):
        return name
    shown = value if isinstance(value, str) else ""
    raise UsageError(f"{kind} name {shown!r} is not valid: use letters (accents allowed), digits and . _ @ -, "
                     f"starting with a letter or digit, {MAX_NAME} characters at most. / Nom de "
                     f"{FRENCH.get(kind, kind)} {shown!r} invalide : lettres (accents permis), chiffres et . _ @ -, "
                     f"en commençant par une lettre ou un chiffre, {MAX_NAME} caractères au plus.", param=kind)
