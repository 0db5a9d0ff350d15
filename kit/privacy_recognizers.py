"""Recognizers behind :mod:`kit.privacy`: checksums, patterns and name/place rules.

Everything here is plain Python on strings, plus rules that read an already parsed spaCy
``Doc``; nothing imports spaCy or Presidio, so the validators can be used (and tested) on
their own. :mod:`kit.privacy` wraps these functions in Presidio recognizers.

Structured identifiers are only reported when their checksum holds: NIR (key = 97 - n mod 97,
Corsica 2A/2B read as 19/18), IBAN (ISO 13 616 mod 97), SIREN/SIRET (Luhn, plus the La Poste
SIRET rule), payment cards (issuer prefix, length, Luhn). Names and places come from the spaCy
NER, filtered by context rules, and from a first-name lexicon and courtesy titles.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span

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


def nir_valid(value: str) -> bool:
    """French social-security number (NIR): 13 characters + 2-digit key, spaced or not."""
    s = _compact(value).upper()
    if not re.fullmatch(r"[1-478]\d{4}(?:\d{2}|2A|2B)\d{8}", s):
        return False
    month = int(s[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
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
_IBAN = re.compile(r"(?<![A-Za-z0-9])(?:[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}|"
                   r"[a-z]{2}\d{2}(?: ?[a-z0-9]){11,30})(?![A-Za-z0-9])")
_NUMRUN = re.compile(r"(?<![\w.,])\d+(?:[ -]\d+)*(?![\w]|[.,]\d)")
_SIREN_CONTEXT = re.compile(r"(?:sir[eè]n|siret|rcs|insee|immatricul|registre du commerce|"
                            r"company (?:number|registration))\W*(?:\S+\s+){0,3}$", re.I)
_PHONE_FR = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:(?:\+|00)\s?33[\s.-]?(?:\(0\)[\s.-]?)?|\(0\)|0)[1-9]"
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
    """All checksum- or pattern-backed findings, plus URLs (kept only to mask out names)."""
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
    for m in _NIR.finditer(text):
        if nir_valid(m.group()):
            out.append(_cand("FR_NIR", m.start(), m.end(), 1.0))
    for m in _IBAN.finditer(text):
        check = functools.partial(_iban_starting_with, m.group()[:2])
        span = _first_valid(text, m.start(), m.end(), check, range(15, 35))
        if span:
            out.append(_cand("IBAN_CODE", span[0], span[1], 1.0))
    for m in _NUMRUN.finditer(text):
        if len(re.sub(r"\D", "", m.group())) < 9:
            continue
        span = _first_valid(text, m.start(), m.end(), card_valid, range(13, 20))
        if span:  # a card may be followed by other digits (security code, expiry)
            out.append(_cand("CREDIT_CARD", span[0], span[1], 1.0))
        # SIRET and SIREN are whole numbers, never part of a longer one (a mistyped SIRET)
        context = bool(_SIREN_CONTEXT.search(text[max(0, m.start() - 40):m.start()]))
        if siret_valid(m.group()):
            out.append(_cand("FR_SIRET", m.start(), m.end(), 1.0 if context else 0.85))
        elif context and siren_valid(m.group()):
            out.append(_cand("FR_SIRET", m.start(), m.end(), 0.95))
    out += [_cand("PHONE_NUMBER", m.start(), m.end(), 0.9) for m in _PHONE_FR.finditer(text)]
    out += _foreign_phones(text)
    return out


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


@functools.lru_cache(maxsize=1)
def _city_pattern() -> re.Pattern[str]:
    names = sorted((c.title() for c in CITIES), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])")


# --------------------------------------------------------------------------- names

NAMEWORD = rf"(?:[{_UP}]['’])?(?:Mc|Mac)?[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
CAPSWORD = rf"[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})*"
_NAME_PARTICLE = r"(?:de|du|des|d['’]|van|von|der|den|di|da|dos|del|el|al|ben|bin|ibn)"
_NAME_SEQ = re.compile(
    rf"(?<![\w@.\-])(?:{NAMEWORD})(?: (?:{_NAME_PARTICLE} ?)?(?:{NAMEWORD}|{CAPSWORD})(?![\w@])){{0,3}}")
_WORD = re.compile(rf"{NAMEWORD}|{CAPSWORD}|{_NAME_PARTICLE}")
_TITLE = re.compile(
    r"(?<![\w])(?:M\.|MM\.|Mme|Mmes|Mlle|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?|Pr\.?|Prof\.?|"
    r"[Mm]adame|[Mm]onsieur|[Mm]ademoiselle|[Dd]octeur|Doctor|Professeur|Professor|Maître)"
    rf" (?=[{_UP}])")
_CAPS_BEFORE = re.compile(rf"(?<![\w])({CAPSWORD}) $")
_EN_WORDS = {"the", "and", "to", "of", "for", "with", "is", "are", "your", "our", "please", "an",
             "this", "that", "his", "her", "from", "by", "be", "will", "can", "you", "it", "at",
             "about", "my", "me", "we", "they", "has", "have", "was", "into", "who", "which"}
_FR_WORDS = {"le", "la", "les", "de", "des", "du", "et", "pour", "à", "un", "une", "est", "au",
             "aux", "dans", "sur", "avec", "que", "qui", "ce", "cette", "son", "sa", "ses", "par",
             "pas", "ne", "il", "elle", "nous", "vous", "je", "mon", "ma", "mes", "notre", "en"}
TITLES = {"m", "mm", "mme", "mmes", "mlle", "mr", "mrs", "ms", "miss", "dr", "pr", "prof",
          "madame", "monsieur", "mademoiselle", "docteur", "doctor", "professeur",
          "professor", "maître"}
_ACRONYMS = {"IBAN", "SIRET", "SIREN", "NIR", "RH", "HR", "CV", "IP", "VPN", "PDF", "DPO",
             "RGPD", "GDPR", "CEO", "CFO", "CTO", "SVP", "TVA", "HT", "TTC", "CDI", "CDD", "NDA",
             "IT", "UK", "USA", "FR", "EN", "OK", "RTT", "CSE", "PME", "SAS", "SA", "SARL"}


def _is_first_name(word: str, strict: bool) -> bool:
    key = word.lower()
    if key not in FIRST_NAMES and key.split("-")[0] not in FIRST_NAMES:
        return False
    return not (strict and key in AMBIGUOUS_FIRST_NAMES)


def _words(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    return [(m.start() + start, m.end() + start, m.group())
            for m in _WORD.finditer(text[start:end])]


def _sentence_initial(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \t'\"«“‘(")
    return not before or before[-1] in ".!?:;\n"


def _is_instruction(word: str, text: str, pos: int, doc: Doc | None) -> bool:
    """True for a verb-like word (imperative, sentence-initial verb) that is not a name."""
    if word.lower() in IMPERATIVES or word.lower() in GREETINGS:
        return True
    if doc is None or not _sentence_initial(text, pos):
        return False
    span = doc.char_span(pos, pos + len(word), alignment_mode="expand")
    if span is None or not len(span):
        return False
    tok = span[0]
    return tok.pos_ in ("VERB", "AUX") or "Imp" in tok.morph.get("Mood", [])


def _person_from_words(words: list[tuple[int, int, str]], text: str, doc: Doc | None,
                       after_title: bool, score: float) -> Candidate | None:
    """Strip greetings, titles and leading verbs; keep what still looks like a name."""
    while words and (words[0][2].lower().rstrip(".") in TITLES
                     or _is_instruction(words[0][2], text, words[0][0], doc)):
        after_title = after_title or words[0][2].lower().rstrip(".") in TITLES
        words = words[1:]
    while words and (words[-1][2] in _ACRONYMS or words[-1][2].islower()):
        words = words[:-1]
    if not words or words[0][2].islower() or words[0][2].isupper():
        return None
    if any(w[2] in _ACRONYMS or w[2].lower() in GREETINGS for w in words):
        return None
    if len(words) == 1 and not after_title and not _is_first_name(words[0][2], True):
        return None
    return _cand("PERSON", words[0][0], words[-1][1], score)


def find_names(text: str, doc: Doc | None) -> list[Candidate]:
    """PERSON and LOCATION candidates from NER spans, courtesy titles and the lexicon."""
    out: list[Candidate] = []
    for m in _TITLE.finditer(text):
        seq = _NAME_SEQ.match(text, m.end())
        if seq:
            found = _person_from_words(_words(text, seq.start(), seq.end()), text, None, True, 0.85)
            if found:
                out.append(found)
    for seq in _NAME_SEQ.finditer(text):
        words = _words(text, seq.start(), seq.end())
        for i, (s, _e, w) in enumerate(words):
            if _is_first_name(w, strict=len(words) - i == 1) and not (
                    i == 0 and len(words) == 1 and _is_instruction(w, text, s, doc)):
                found = _person_from_words(words[i:], text, doc, False, 0.8)
                surname = _CAPS_BEFORE.search(text, 0, s) if i == 0 else None
                if found and surname and surname.group(1) not in _ACRONYMS:  # "DUPONT Jean"
                    found = _cand("PERSON", surname.start(1), found.end, found.score)
                if found:
                    out.append(found)
                break
    if doc is not None:
        out += _ner_candidates(text, doc)
    return out


def _looks_english(tokens: Doc | Span) -> bool:
    words = [t.lower_ for t in tokens]
    return sum(w in _EN_WORDS for w in words) > sum(w in _FR_WORDS for w in words)


def _looks_french(tokens: Doc | Span) -> bool:
    words = [t.lower_ for t in tokens]
    return sum(w in _FR_WORDS for w in words) > sum(w in _EN_WORDS for w in words)


def _ner_candidates(text: str, doc: Doc) -> list[Candidate]:
    out: list[Candidate] = []
    for ent in doc.ents:
        if ent.label_ not in ("PER", "LOC"):
            continue
        if ent.label_ == "PER":
            if _looks_english(ent.sent) or (_looks_english(doc) and not _looks_french(ent.sent)):
                continue  # the French NER is unreliable on English; lexicon and titles cover it
            for seq in _NAME_SEQ.finditer(text, ent.start_char, ent.end_char):
                after_title = bool(re.search(r"(?:^|\s)(?:M\.|Mme|Mr|Mrs|Ms|Dr)\s*$",
                                             text[max(0, seq.start() - 6):seq.start()]))
                words = _words(text, seq.start(), min(seq.end(), ent.end_char))
                backed = after_title or any(_is_first_name(w, False) for _, _, w in words)
                found = _person_from_words(words, text, doc, after_title, 0.95 if backed else 0.75)
                if found:
                    out.append(found)
            continue
        toks = [t for t in ent if not (t.is_punct or t.pos_ in ("DET", "ADP"))]
        while toks and (toks[0].pos_ in ("VERB", "AUX") or toks[0].text.lower() in IMPERATIVES):
            toks = toks[1:]
        if not toks or not toks[0].text[:1].isupper() or any(t.like_num for t in ent):
            continue
        if any(ch.isdigit() for ch in ent.text) or any(t.text in _ACRONYMS for t in toks):
            continue
        if len(toks) == 1 and toks[0].text.lower() not in CITIES and (
                toks[0].pos_ != "PROPN" or toks[0].text.isupper() or len(toks[0]) < 3
                or toks[0].text.lower() in GREETINGS or _sentence_initial(text, toks[0].idx)):
            continue
        out.append(_cand("LOCATION", toks[0].idx, toks[-1].idx + len(toks[-1].text), 0.7))
    return out


def resolve(candidates: list[Candidate]) -> list[Candidate]:
    """Non-overlapping selection: same-type overlaps merge, otherwise priority then score win."""
    merged: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.type, c.start)):
        last = merged[-1] if merged else None
        if last and last.type == c.type and c.start < last.end:
            merged[-1] = Candidate(c.type, last.start, max(last.end, c.end),
                                   max(last.score, c.score), max(last.priority, c.priority))
        else:
            merged.append(c)
    chosen: list[Candidate] = []
    for c in sorted(merged, key=lambda c: (-c.priority, -c.score, c.start - c.end, c.start)):
        if all(c.end <= k.start or c.start >= k.end for k in chosen):
            chosen.append(c)
    return sorted(chosen, key=lambda c: c.start)


# --------------------------------------------------------------------------- lexicons
# Written for this module: common first names in France and in English-speaking countries.
# Names that are also ordinary words, months or places only count when a surname follows.

FIRST_NAMES: frozenset[str] = frozenset("""
marie jeanne françoise francoise monique catherine nathalie isabelle sylvie anne martine christine
nicole sophie sandrine valérie valerie véronique veronique céline celine stéphanie stephanie
chantal patricia brigitte aurélie aurelie julie émilie emilie camille laura sarah manon léa lea
chloé chloe emma inès ines jade louise alice lina léna lena mila zoé zoe juliette lucie clara
anaïs anais pauline mathilde marine charlotte margaux margot océane oceane audrey élodie elodie
caroline claire hélène helene florence laurence corinne karine virginie delphine agnès agnes
béatrice beatrice dominique josiane ginette simone denise yvette odette colette danielle
jacqueline michèle michele michelle nadine annie christiane évelyne evelyne pascale muriel
fabienne laetitia lætitia mélanie melanie amandine marion justine morgane élise elise lisa eva
ambre rose anna romane agathe victoire gabrielle adèle adele léonie leonie capucine apolline
héloïse heloise noémie noemie clémence clemence maëlle maelle maëlys lou nina lola yasmine
yasmina sofia aïcha aicha fatima fatoumata nadia samira leïla leila amina khadija salomé salome
mélissa melissa jessica cindy coralie solène solene aurore vanessa estelle emmanuelle sabrina
séverine severine angélique angelique alexandra cécile cecile gaëlle gaelle joëlle joelle
maryse régine regine solange thérèse therese paulette huguette marcelle germaine lucienne
suzanne andrée renée geneviève genevieve bernadette arlette mireille lydie myriam eloïse
ophélie ophelie axelle lucile bérénice berenice blandine armelle ségolène segolene hortense
jean pierre michel andré andre philippe alain bernard jacques daniel patrick nicolas christophe
laurent frédéric frederic stéphane stephane éric eric olivier sébastien sebastien thierry david
julien pascal thomas alexandre antoine maxime hugo lucas louis gabriel léo leo raphaël raphael
arthur jules adam nathan ethan paul tom théo theo noah mathis enzo clément clement romain
vincent françois francois guillaume jérôme jerome didier gérard gerard claude christian franck
bruno yves marc luc benoît benoit cédric cedric fabrice arnaud damien mathieu matthieu florian
kévin kevin anthony jonathan quentin benjamin jérémy jeremy mickaël mickael michaël michael
sylvain ludovic grégory gregory yannick xavier hervé herve gilles serge denis marcel roger
robert rené rene henri georges lucien raymond maurice guy gilbert joël joel yvon fabien adrien
baptiste valentin victor timothée timothee axel martin simon aurélien aurelien rémi remi rémy
remy loïc loic erwan gwenaël ronan tristan karim mehdi mohamed mohammed ahmed rachid youssef
samir nabil farid hamza bilal amine sofiane yanis rayan ibrahim moussa mamadou ousmane malik
djamel kamel nordine abdel jose josé joão joao miguel carlos antonio manuel luis diego sergio
mary jennifer linda elizabeth barbara susan karen nancy betty margaret sandra ashley kimberly
emily donna carol amanda deborah rebecca sharon cynthia kathleen amy angela shirley brenda
pamela helen samantha katherine debra rachel carolyn janet maria heather diane ruth olivia
joyce virginia victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah
martha gloria teresa ann sara madison frances kathryn janice abigail judy sophia grace amber
doris marilyn beverly isabella theresa diana natalie brittany kayla alexis lori lucy ella mia
ava isla poppy freya harriet holly eleanor phoebe imogen abby molly ellie jasmine siobhan
niamh aoife fiona gemma kirsty caitlin bethany jenny kate katie amelia georgia
james john william richard joseph charles christopher matthew mark donald steven stephen
andrew joshua kenneth brian george timothy ronald edward jason jeffrey ryan jacob gary
nicholas larry justin scott brandon samuel alexander frank raymond jack dennis jerry tyler
aaron henry douglas zachary peter kyle walter keith terry gerald harold sean austin carl
lawrence dylan jesse jordan bryan billy joe bruce logan albert willie alan juan wayne elijah
randy roy ralph eugene russell bobby mason philip oliver harry charlie oscar alfie freddie
archie liam callum connor declan rory owen rhys gareth ewan alistair graham neil ian colin
stuart craig tim mike steve dave chris matt ben sam nick rob bob jim tony pete dan andy luke
tobias toby hugh rupert nigel trevor barry derek dean lee raj rahul amit anil sanjay vikram
arjun priya wei chen yuki hiroshi kenji mei ana lucia fatou aminata kofi kwame
""".split())

AMBIGUOUS_FIRST_NAMES: frozenset[str] = frozenset("""
marine rose florence nancy victoria georgia jordan austin grace amber jade guy mark frank dean
holly pascal victoire ambre""".split())

GREETINGS: frozenset[str] = frozenset("""
bonjour bonsoir salut coucou hello hi hey dear cher chère chers chères merci thanks thank
cordialement regards best bienvenue welcome félicitations congratulations bravo objet subject
nom prénom name contact tél tel email mail courriel téléphone phone mobile adresse address
signé signed cc re tr fwd""".split())

IMPERATIVES: frozenset[str] = frozenset("""
rédige rédigez rédiger écris écrivez écrire résume résumez résumer traduis traduisez traduire
explique expliquez expliquer corrige corrigez corriger reformule reformulez reformuler propose
proposez proposer liste listez lister fais faites faire prépare préparez préparer crée créez
créer génère générez générer analyse analysez analyser calcule calculez calculer vérifie
vérifiez vérifier complète complétez compléter synthétise synthétisez synthétiser relis relisez
relire réécris réécrivez réécrire mets mettez mettre ajoute ajoutez ajouter envoie envoyez
envoyer transmets transmettez transmettre réponds répondez répondre formule formulez formuler
décris décrivez décrire donne donnez donner cite citez compare comparez comparer classe classez
trie triez transforme transformez anonymise anonymisez appelle appelez rappelle rappelez
contacte contactez note notez inscris inscrivez aide aidez peux pouvez relance relancez
imagine imaginez suggère suggérez identifie identifiez structure structurez simplifie
simplifiez améliore améliorez adapte adaptez convertis convertissez organise organisez
planifie planifiez présente présentez conseille conseillez indique indiquez précise précisez
évalue évaluez estime estimez détaille détaillez développe développez commente commentez
récapitule récapitulez extrais extrayez remercie remerciez installe installez configure
configurez explique-moi dis dites montre montrez cherche cherchez trouve trouvez
write draft summarise summarize translate explain rewrite proofread correct fix create
generate list propose suggest prepare compose format review check analyse analyze calculate
convert compare describe give tell show help find make send reply respond record file add
update complete outline plan organise organize design edit improve simplify shorten expand
rephrase paraphrase please can could would should call email thank remind schedule book cancel
confirm forward share highlight extract classify sort identify evaluate assess estimate
recommend build set let turn anonymise anonymize
""".split())

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
