"""Structured identifiers and places: checksums (NIR, IBAN, SIREN/SIRET, payment cards), patterns for
e-mail, URL, IP, phone numbers and postal addresses, and a list of French cities.

A NIR whose key does not match is still reported, with the lower score ``NIR_TYPO_SCORE``, when words
that name a social-security number come shortly before it (see :func:`context_before`): a typo must not
let a number that the writer calls a NIR through. Every rule looks at a bounded window around its match,
so the cost grows linearly with the text.

:func:`find_structured` reads the text in its plain and grouped forms (:mod:`kit.rules.privacy.forms`), so an
identifier written with no-break spaces, dashes, dots, slashes, fullwidth digits or a zero-width space is
found too, on the characters as typed.

Plain Python on strings; nothing imports spaCy.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from kit.rules.privacy import forms

# Merge priority: when two findings overlap, the one with the higher priority wins.
PRIORITY: dict[str, int] = {
    "EMAIL_ADDRESS": 100, "URL": 95, "IBAN_CODE": 90, "FR_NIR": 85, "FR_SIRET": 80,
    "CREDIT_CARD": 75, "IP_ADDRESS": 70, "PHONE_NUMBER": 60, "ADDRESS": 50,
    "PERSON": 40, "LOCATION": 30,
}


@dataclass(frozen=True)
class Candidate:
    """A span proposed by one recognizer, before overlaps are resolved."""

    type: str
    start: int
    end: int
    score: float
    priority: int


def _cand(kind: str, start: int, end: int, score: float, entity: str | None = None) -> Candidate:
    return Candidate(entity or kind, start, end, score, PRIORITY[kind])


# --------------------------------------------------------------------------- checksums

def _compact(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value)


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check on a string of digits."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def nir_shaped(value: str) -> bool:
    """Laid out as a French social-security number (NIR): sex, year, month, place, order, 2-digit
    key, spaced or not; the key is not checked."""
    s = _compact(value).upper()
    if not re.fullmatch(r"[1-478]\d{4}(?:\d{2}|2A|2B)\d{8}", s):
        return False
    month = int(s[3:5])
    return 1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99


def nir_valid(value: str) -> bool:
    """French social-security number (NIR): 13 characters + 2-digit key (97 - body mod 97)."""
    if not nir_shaped(value):
        return False
    s = _compact(value).upper()
    body = s[:13].replace("2A", "19", 1) if s[5:7] == "2A" else s[:13]
    body = body.replace("2B", "18", 1) if s[5:7] == "2B" else body
    key = int(s[13:])
    return 1 <= key <= 97 and key == 97 - int(body) % 97


_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "MA": 28,
    "TN": 24, "TR": 26,
}


def iban_valid(value: str) -> bool:
    """IBAN of any country (ISO 13 616 mod-97 check), spaced or not."""
    s = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    expected = _IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def siren_valid(value: str) -> bool:
    """SIREN (9 digits, Luhn)."""
    s = _compact(value)
    return len(s) == 9 and luhn_valid(s)


def siret_valid(value: str) -> bool:
    """SIRET (14 digits, Luhn; La Poste establishments use a digit sum divisible by 5)."""
    s = _compact(value)
    if len(s) != 14 or not s.isdigit():
        return False
    if s.startswith("356000000") and s != "35600000000048":
        return sum(int(c) for c in s) % 5 == 0
    return luhn_valid(s)


def card_valid(value: str) -> bool:
    """Payment card number: known issuer prefix and length, and Luhn."""
    s = _compact(value)
    if not s.isdigit() or not 13 <= len(s) <= 19:
        return False
    n = len(s)
    if s[0] == "4":
        ok = n in (13, 16, 19)
    elif s[:2] in ("34", "37"):
        ok = n == 15
    elif 51 <= int(s[:2]) <= 55 or 2221 <= int(s[:4]) <= 2720:
        ok = n == 16
    elif s.startswith(("6011", "65")) or 644 <= int(s[:3]) <= 649 or 3528 <= int(s[:4]) <= 3589:
        ok = 16 <= n <= 19
    elif s[:2] in ("36", "38", "39") or 300 <= int(s[:3]) <= 305:
        ok = 14 <= n <= 19
    else:
        ok = s.startswith(("50", "56", "57", "58", "6")) and 16 <= n <= 19  # Maestro
    return ok and luhn_valid(s)


# --------------------------------------------------------------------------- patterns

_LATIN = [chr(c) for c in range(0xC0, 0x250)]
_UP = "A-Z" + "".join(c for c in _LATIN if c.isupper())  # capital letters, Latin-1 + Extended-A/B
_LOW = "a-z" + "".join(c for c in _LATIN if c.islower())

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w][\w.%+-]*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"«»]+[^\s<>\"«».,;:!?)']")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
                   r"\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])")
_VERSION_CONTEXT = re.compile(
    r"(?:\bv|version|build|release|mise à jour|update|upgrade|firmware|patch|correctif|hotfix|"
    r"révision|revision|framework|logiciel|software|paquet|package|maj)\W{0,3}(?:\S+\s+){0,2}$",
    re.IGNORECASE)
_NIR = re.compile(r"(?<![\w])(?<!\d[ .])[1-478][ .]?\d{2}[ .]?\d{2}[ .]?(?:2[AaBb]|\d{2})"
                  r"(?:[ .]?\d){6}[ .]?\d{2}(?![\w])(?![ .]\d)")
# Words that name a social-security number, matched in folded text (lower case, no accents).
_NIR_CONTEXT = re.compile(r"\b(?:nir|secu|securite sociale|social security|insee|carte vitale|"
                          r"repertoire national d'identification|numero d'inscription au repertoire)\b")
CONTEXT_WORDS = 8
CONTEXT_CHARS = 80
NIR_TYPO_SCORE = 0.6
# in any case ("Fr76", an account's letters in lower case); a country code not in capitals must be a known one
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2} ?\d{2}(?: ?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_NUMRUN = re.compile(r"(?<![\w.,])\d+(?:[ -]\d+)*(?![\w]|[.,]\d)")
_SIREN_CONTEXT = re.compile(r"(?:sir[eè]n|siret|rcs|insee|immatricul|registre du commerce|"
                            r"company (?:number|registration))\W*(?:\S+\s+){0,3}$", re.I)
_PHONE_FR = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:(?:\(\s?(?:\+|00)\s?33\s?\)|(?:\+|00)\s?33)[\s.-]?(?:\(0\)[\s.-]?|0)?|\(0\)|0)[1-9]"
    r"(?:[\s.-]?\d{2}){4}(?![\w])(?![ .-]\d)")
_PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|00)(?!33)[1-9]\d{0,2}(?:[\s.-]?\(0\))?"
                         r"(?:[\s.-]?\d{1,5}){1,6}(?![\w])")
_PHONE_UK = re.compile(r"(?<![\w+])(?<!\d[ .-])0\d{3,4}[ -]?\d{3}[ -]?\d{3,4}(?![\w])(?![ .-]\d)")

_STREET_FR = (r"rue|avenue|av\.|boulevard|bd|allée|impasse|quai|chemin|route|place|cours|"
              r"square|passage|voie|sentier|parvis|esplanade")
_PARTICLE = r"(?:de la|de l['’]|du|des|de|d['’]|la|le|les|l['’])"
_CAPWORD = rf"[{_UP}][\w'’\-]*"
_ADDRESS_FR = re.compile(
    rf"(?<![\w])(?:\d{{1,4}}(?: ?(?:bis|ter))?,? )?(?:{_STREET_FR}) (?:{_PARTICLE} ?)?{_CAPWORD}"
    rf"(?: (?:{_PARTICLE} ?)?{_CAPWORD}){{0,3}}")
_ADDRESS_EN = re.compile(
    r"(?<![\w])\d{1,5} (?:[A-Z][\w'’\-]* ){1,3}(?:Street|Road|Avenue|Lane|Drive|Boulevard|"
    r"Square|Place|Way|Court|Close|Crescent|Terrace|Gardens|Row|Mews|Rd|Ave)\b")
_POSTCODE_CITY = re.compile(rf"(?<![\w])\d{{5}} [{_UP}][\w'’\-]+(?:[ -][{_UP}][\w'’\-]+){{0,2}}")
_STREET_NEEDS_NUMBER = {"route", "place", "cours", "square", "passage", "voie", "sentier"}


def _sub_spans(text: str, start: int, end: int,
               sizes: range = range(1, 49)) -> list[tuple[int, int, str]]:
    """Ranges of whole groups of a separated number whose compact length is in ``sizes``,
    longest first, then leftmost, each with its compact value."""
    groups = [(m.start() + start, m.end() + start, m.group())
              for m in re.finditer(r"[A-Za-z0-9]+", text[start:end])]
    spans: list[tuple[int, int, str]] = []
    for i, (first, _, _) in enumerate(groups):
        compact = ""
        for j in range(i, len(groups)):
            _, g_end, value = groups[j]
            compact += value
            if len(compact) >= sizes.stop:
                break
            if len(compact) in sizes:
                spans.append((first, g_end, compact))
    return sorted(spans, key=lambda s: (-len(s[2]), s[0]))


def _first_valid(text: str, start: int, end: int, check: Callable[[str], bool],
                 sizes: range = range(1, 49)) -> tuple[int, int] | None:
    for s, e, compact in _sub_spans(text, start, end, sizes):
        if check(compact):
            return s, e
    return None


def _iban_starting_with(head: str, value: str) -> bool:
    """A valid IBAN that begins at the matched country code (lowercase only for known ones)."""
    if value[:2] != head or not iban_valid(value):
        return False
    return head.isupper() or head.upper() in _IBAN_LENGTHS


def find_structured(text: str) -> list[Candidate]:
    """All checksum- or pattern-backed findings, plus URLs (kept only to mask out names), in every
    form of writing (:mod:`kit.rules.privacy.forms`); spans refer to ``text`` as given."""
    view = forms.normalize(text)
    return [Candidate(c.type, *view.span(c.start, c.end), c.score, c.priority) for c in structured_in(view.text)]


def structured_in(plain: str) -> list[Candidate]:
    """:func:`find_structured` on a plain text (:func:`forms.normalize`'s), spans in that text: every rule
    on the plain text, and the number rules again on its grouped view (:func:`forms.separated`)."""
    out = _patterns(plain) + _numbers(plain)
    grouped = forms.separated(plain)
    if grouped is not None:
        for c in _numbers(grouped.text):
            start, end = grouped.span(c.start, c.end)
            # one way of grouping a number: a date followed by a time ("05/06/2024 12:30") is no phone; checked
            # numbers may mix them (a card's Luhn, a SIRET after its name)
            if (len(forms.separator_kinds(plain, start, end)) <= 1 or c.type in ("IBAN_CODE", "FR_NIR", "CREDIT_CARD")
                    or (c.type == "FR_SIRET" and c.score == 1.0)):
                out.append(Candidate(c.type, start, end, c.score, c.priority))
    # the last groups of a phone number written 06 12.34.56.78 are no IP address
    phones = [(c.start, c.end) for c in out if c.type == "PHONE_NUMBER"]
    return [c for c in out if c.type != "IP_ADDRESS"
            or not any(s <= c.start and c.end <= e and e - s > c.end - c.start for s, e in phones)]


def _patterns(text: str) -> list[Candidate]:
    """E-mail addresses, URLs and IP addresses: their dots matter, so only in the plain view."""
    out: list[Candidate] = []
    out += [_cand("EMAIL_ADDRESS", m.start(), m.end(), 1.0) for m in _EMAIL.finditer(text)]
    out += [_cand("URL", m.start(), m.end(), 1.0) for m in _URL.finditer(text)]
    for m in _IPV4.finditer(text):
        if not _VERSION_CONTEXT.search(text[max(0, m.start() - 40):m.start()]):
            out.append(_cand("IP_ADDRESS", m.start(), m.end(), 0.9))
    for m in _IPV6.finditer(text):
        value = m.group()
        if value.count(":") >= 2 and sum(c.isalnum() for c in value) >= 3:
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                continue
            out.append(_cand("IP_ADDRESS", m.start(), m.end(), 0.95))
    return out


def _numbers(text: str) -> list[Candidate]:
    """NIR, IBAN, payment cards, SIRET/SIREN and phone numbers written with single spaces, dots or dashes."""
    out: list[Candidate] = []
    for m in _NIR.finditer(text):
        if nir_valid(m.group()):
            out.append(_cand("FR_NIR", m.start(), m.end(), 1.0))
        elif nir_shaped(m.group()) and _NIR_CONTEXT.search(context_before(text, m.start())):
            out.append(_cand("FR_NIR", m.start(), m.end(), NIR_TYPO_SCORE))
    pos = 0
    while (found := _IBAN.search(text, pos)) is not None:  # a match may run on into the words and IBAN after it
        m = found
        check = functools.partial(_iban_starting_with, m.group()[:2])
        span = _first_valid(text, m.start(), m.end(), check, range(15, 35))
        if span:
            out.append(_cand("IBAN_CODE", span[0], span[1], 1.0))
        pos = span[1] if span else m.start() + 1
    for m in _NUMRUN.finditer(text):
        if len(re.sub(r"\D", "", m.group())) < 9:
            continue
        span = _first_valid(text, m.start(), m.end(), card_valid, range(13, 20))
        if span:  # a card may be followed by other digits (security code, expiry)
            out.append(_cand("CREDIT_CARD", span[0], span[1], 1.0))
        span = _first_valid(text, m.start(), m.end(), nir_valid, range(15, 16))
        if span and not any(c.type == "FR_NIR" and c.start <= span[0] and span[1] <= c.end for c in out):
            out.append(_cand("FR_NIR", span[0], span[1], 1.0))  # grouped otherwise (in threes, in fours)
        # SIRET and SIREN are whole numbers, never part of a longer one (a mistyped SIRET)
        context = bool(_SIREN_CONTEXT.search(text[max(0, m.start() - 40):m.start()]))
        if siret_valid(m.group()):
            out.append(_cand("FR_SIRET", m.start(), m.end(), 1.0 if context else 0.85))
        elif context and siren_valid(m.group()):
            out.append(_cand("FR_SIRET", m.start(), m.end(), 0.95))
    out += [_cand("PHONE_NUMBER", m.start(), m.end(), 0.9) for m in _PHONE_FR.finditer(text)]
    out += _foreign_phones(text)
    return out


def fold(value: str) -> str:
    """Lower case without accents, typographic apostrophes made plain: "Sécurité" reads "securite"."""
    decomposed = unicodedata.normalize("NFKD", value.replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def context_before(text: str, start: int, words: int = CONTEXT_WORDS, chars: int = CONTEXT_CHARS) -> str:
    """The last ``words`` words before ``start``, within ``chars`` characters, folded (:func:`fold`);
    a word cut by the window's edge is left out."""
    begin = max(0, start - chars)
    tokens = text[begin:start].split()
    if tokens and begin > 0 and not text[begin - 1].isspace() and not text[begin].isspace():
        tokens = tokens[1:]
    return fold(" ".join(tokens[-words:]))


def _foreign_phones(text: str) -> list[Candidate]:
    """International (+CC / 00CC) and British national numbers, checked with libphonenumber."""
    hits: list[tuple[re.Match[str], str | None]] = [(m, None) for m in _PHONE_INTL.finditer(text)]
    hits += [(m, "GB") for m in _PHONE_UK.finditer(text)]
    if not hits:
        return []
    import phonenumbers  # local import: only needed when a candidate is present

    out: list[Candidate] = []
    for m, region in hits:
        spans = _sub_spans(text, m.start(), m.end(), range(6, 16))
        if region is None:  # an international number must keep its country code
            first = min((s for s, _, _ in spans), default=-1)
            spans = [(m.start(), e, c) for s, e, c in spans if s == first]
        for s, e, _ in spans:
            raw = re.sub(r"^00", "+", text[s:e].strip())
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_possible_number(number):
                out.append(_cand("PHONE_NUMBER", s, e, 0.85))
                break
    return out


def find_addresses(text: str) -> list[Candidate]:
    """Street addresses (French and English spellings) and 'postcode City' pairs."""
    out: list[Candidate] = []
    for m in _ADDRESS_FR.finditer(text):
        street = re.match(rf"(?:\d{{1,4}}(?: ?(?:bis|ter))?,? )?({_STREET_FR})", m.group())
        if street and street.group(1) in _STREET_NEEDS_NUMBER and not m.group()[0].isdigit():
            continue
        out.append(_cand("ADDRESS", m.start(), m.end(), 0.85, "LOCATION"))
    out += [_cand("ADDRESS", m.start(), m.end(), 0.85, "LOCATION")
            for m in _ADDRESS_EN.finditer(text)]
    out += [_cand("LOCATION", m.start(), m.end(), 0.7) for m in _POSTCODE_CITY.finditer(text)]
    out += [_cand("LOCATION", m.start(), m.end(), 0.75) for m in _city_pattern().finditer(text)]
    return out


# Large cities (France first, then elsewhere) whose names are not also common words.
CITIES: frozenset[str] = frozenset(c.replace("_", " ") for c in """
paris marseille lyon toulouse nantes montpellier strasbourg bordeaux lille rennes reims toulon
grenoble dijon angers nîmes villeurbanne clermont-ferrand le_havre aix-en-provence brest
limoges amiens perpignan metz besançon orléans rouen mulhouse caen argenteuil montreuil roubaix
tourcoing avignon poitiers versailles créteil colmar calais cherbourg annecy chambéry lorient
quimper vannes bayonne biarritz ajaccio bastia saint-étienne saint-denis boulogne-billancourt
nanterre vincennes la_rochelle saint-nazaire dunkerque valenciennes niort troyes chartres
london manchester birmingham liverpool glasgow edinburgh bristol cardiff dublin belfast oxford
cambridge leeds sheffield newcastle brussels bruxelles amsterdam rotterdam berlin munich münchen
hamburg frankfurt cologne madrid barcelona barcelone lisbon lisbonne milan milano turin naples
vienna genève geneva zurich lausanne luxembourg prague warsaw varsovie budapest stockholm oslo
copenhagen copenhague helsinki athens athènes istanbul new_york boston chicago montréal montreal
québec toronto vancouver tokyo beijing pékin shanghai singapore singapour dubai casablanca rabat
tunis alger algiers dakar abidjan los_angeles san_francisco washington
""".split())


@functools.lru_cache(maxsize=1)
def _city_pattern() -> re.Pattern[str]:
    names = sorted((c.title() for c in CITIES), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])")
