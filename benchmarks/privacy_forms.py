"""Personal data written the ways people and office software write it, and ordinary text that holds none.

Variants: valid identifiers (checksums computed here) written in every form below, each inside a short
French sentence, with the span the detector must report; e-mail addresses and names with invisible or
fullwidth characters. The clean set: ``benchmarks/data/privacy_clean_fr.txt``, French administrative
sentences with dates, amounts, article, order, ticket and version numbers and no personal data.

    recall per category and form = variants whose exact span is reported with the right type / variants
    false positives = clean sentences with a finding (structured types apart from PERSON and LOCATION)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLEAN_DATA = ROOT / "benchmarks" / "data" / "privacy_clean_fr.txt"


def shown(path: str | Path) -> str:
    """A data file as the results name it: relative to the repository when it lies inside."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


STRUCTURED = ("FR_NIR", "IBAN_CODE", "CREDIT_CARD", "FR_SIRET", "PHONE_NUMBER", "EMAIL_ADDRESS", "IP_ADDRESS")
ZWSP, SOFT_HYPHEN, NBSP, NNBSP = "\u200b", "\u00ad", "\u00a0", "\u202f"


def luhn_complete(prefix: str) -> str:
    """``prefix`` and the digit that makes it pass the Luhn check."""
    for d in "0123456789":
        total = 0
        for i, ch in enumerate(reversed(prefix + d)):
            n = int(ch) * (2 if i % 2 else 1)
            total += n - 9 if n > 9 else n
        if total % 10 == 0:
            return prefix + d
    raise ValueError(prefix)


def nir(body: str) -> str:
    """A 13-character NIR body and its key."""
    digits = body.replace("2A", "19").replace("2B", "18")
    return f"{body}{97 - int(digits) % 97:02d}"


def iban(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def groups_of(value: str, sizes: list[int]) -> list[str]:
    out, at = [], 0
    for size in sizes:
        out.append(value[at:at + size])
        at += size
    if at < len(value):
        out.append(value[at:])
    return [g for g in out if g]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _arabic_indic(text: str) -> str:
    return "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in text)


def _inside(text: str, mark: str) -> str:
    """``mark`` inserted between two letters or digits near the middle."""
    middle = len(text) // 2
    for at in sorted(range(1, len(text)), key=lambda i: abs(i - middle)):
        if text[at - 1].isalnum() and text[at].isalnum():
            return text[:at] + mark + text[at:]
    return text


def _line_break(groups: list[str]) -> str:
    middle = len(groups) // 2
    return " ".join(groups[:middle]) + "\n" + " ".join(groups[middle:])


# Forms of a number written in groups: name -> groups -> text.
NUMBER_FORMS: dict[str, Callable[[list[str]], str]] = {
    "spaces": " ".join,
    "compact": "".join,
    "nbsp": NBSP.join,
    "narrow_nbsp": NNBSP.join,
    "dashes": "-".join,
    "en_dashes": "\u2013".join,
    "spaced_dashes": " - ".join,
    "dots": ".".join,
    "slashes": "/".join,
    "tabs": "\t".join,
    "several_spaces": "   ".join,
    "line_break": _line_break,
    "fullwidth": lambda g: _fullwidth(" ".join(g)),
    "arabic_indic_digits": lambda g: _arabic_indic(" ".join(g)),
    "zero_width_space": lambda g: _inside(" ".join(g), ZWSP),
    "soft_hyphen": lambda g: _inside("".join(g), SOFT_HYPHEN),
}


@dataclass(frozen=True)
class Variant:
    """One identifier in one form, inside ``text`` at ``start:end``."""

    category: str
    form: str
    text: str
    start: int
    end: int


def _sentence(template: str, value: str) -> tuple[str, int, int]:
    start = template.index("{}")
    return template.replace("{}", value), start, start + len(value)


def number_values() -> dict[str, list[tuple[list[str], str]]]:
    """Valid identifiers per category, as groups, each with the sentence it is written in."""
    nirs = [nir(b) for b in ("1850578006084", "2930275123456", "1620199231017", "2751269123045",
                             "185052A123456")]
    ibans = [iban("FR", "30006000011234567890189"), iban("GB", "NWBK60161331926819"),
             iban("DE", "370400440532013000"), iban("BE", "539007547034"), iban("ES", "21000418450200051332")]
    cards = [luhn_complete("497010123456789"), luhn_complete("513000000000000"),
             luhn_complete("37828224631000"), luhn_complete("601100099013942")]
    sirets = [luhn_complete("7328293200007"), luhn_complete("5520820000004"), luhn_complete("4120381930002")]
    sirens = [luhn_complete(s[:8]) for s in sirets]
    return {
        "FR_NIR": [(groups_of(v, [1, 2, 2, 2, 3, 3]), t) for v, t in zip(nirs, [
            "Mon numéro de sécurité sociale est le {}, merci.", "Pièce reçue : {} (à vérifier).",
            "Agent concerné {}.", "NIR : {}", "Voici la référence {} pour le dossier."], strict=True)],
        "IBAN_CODE": [(groups_of(v, [4] * 8), t) for v, t in zip(ibans, [
            "Merci de virer la somme sur {} avant vendredi.", "IBAN : {}", "Compte {} au nom du fournisseur.",
            "Le RIB porte {}.", "Payer sur {} svp."], strict=True)],
        "CREDIT_CARD": [(groups_of(v, [4, 6, 5] if len(v) == 15 else [4] * 4), t) for v, t in zip(cards, [
            "Paie avec la carte {} stp.", "Carte bancaire {}, expiration 12/27.", "N° de carte : {}",
            "La carte {} a été refusée."], strict=True)],
        "FR_SIRET": [(groups_of(v, [3, 3, 3, 5]), t) for v, t in zip(sirets, [
            "SIRET de l'entreprise : {}.", "Le numéro SIRET {} figure sur la facture.",
            "Immatriculée sous le SIRET {}."], strict=True)]
        + [(groups_of(v, [3, 3, 3]), t) for v, t in zip(sirens, [
            "SIREN {} au registre.", "Société inscrite au RCS sous le n° {}.",
            "Numéro SIREN : {}"], strict=True)],
        "PHONE_NUMBER": [
            (["06", "12", "34", "56", "78"], "Appelle-moi au {} demain."),
            (["01", "45", "67", "89", "12"], "Le standard répond au {}."),
            (["+33", "6", "12", "34", "56", "78"], "Mon portable : {}"),
            (["0033", "1", "45", "67", "89", "12"], "Joignable au {} le matin."),
            (["+44", "20", "7946", "0958"], "Our London office: {}."),
            (["+1", "415", "555", "0132"], "Call {} for support."),
        ],
    }


def variants() -> list[Variant]:
    """Every identifier of :func:`number_values` in every form, plus e-mail addresses and names."""
    out: list[Variant] = []
    for category, values in number_values().items():
        for groups, template in values:
            for form, write in NUMBER_FORMS.items():
                out.append(Variant(category, form, *_sentence(template, write(groups))))
    emails = [("claire.martin@exemple.fr", "Écris à {} pour confirmer."),
              ("j.dupont@mairie-lyon.fr", "Contact : {}"), ("service.rh@agence.gouv.fr", "Réponse à {}.")]
    email_forms: dict[str, Callable[[str], str]] = {
        "plain": str, "fullwidth_at": lambda v: v.replace("@", "\uff20"),
        "fullwidth": _fullwidth, "zero_width_local": lambda v: _inside(v.split("@")[0], ZWSP) + "@" + v.split("@")[1],
        "zero_width_domain": lambda v: v.split("@")[0] + "@" + _inside(v.split("@")[1], ZWSP),
        "soft_hyphen": lambda v: _inside(v.split("@")[0], SOFT_HYPHEN) + "@" + v.split("@")[1],
    }
    for value, template in emails:
        for form, spell in email_forms.items():
            out.append(Variant("EMAIL_ADDRESS", form, *_sentence(template, spell(value))))
    names = [("Marie Dupont", "Le dossier de {} est complet."), ("Jean-Pierre Lefèvre", "Réunion avec {} lundi."),
             ("Sophie Bernard", "Transmettre à Mme {} le rapport.")]
    name_forms: dict[str, Callable[[str], str]] = {
        "plain": str, "nbsp": lambda v: v.replace(" ", NBSP), "zero_width_space": lambda v: _inside(v, ZWSP),
        "soft_hyphen": lambda v: _inside(v, SOFT_HYPHEN), "combining_accents": lambda v: v.replace("è", "e\u0300"),
    }
    for value, template in names:
        for form, spell in name_forms.items():
            out.append(Variant("PERSON", form, *_sentence(template, spell(value))))
    return out


def load_clean(path: str | Path = CLEAN_DATA) -> list[str]:
    """The clean sentences: one a line; blank lines and lines starting with # are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def evaluate_forms(scan: Callable[[list[str]], list[list[Any]]], clean_path: str | Path = CLEAN_DATA) -> dict[str, Any]:
    """Recall per category and form on :func:`variants`, false positives on the clean set; ``scan`` takes
    a list of texts and gives the findings (with ``type``, ``start``, ``end``) of each."""
    cases = variants()
    found = scan([v.text for v in cases])
    recall: dict[str, dict[str, list[int]]] = {}
    misses = []
    for v, findings in zip(cases, found, strict=True):
        if v.category == "PERSON":  # a name is found when a PERSON span covers it
            hit = any(f.type == v.category and f.start <= v.start and f.end >= v.end for f in findings)
        else:
            hit = any(f.type == v.category and (f.start, f.end) == (v.start, v.end) for f in findings)
        counts = recall.setdefault(v.category, {}).setdefault(v.form, [0, 0])
        counts[0] += hit
        counts[1] += 1
        if not hit:
            misses.append({"category": v.category, "form": v.form, "text": v.text,
                           "found": [(f.type, f.text) for f in findings]})
    clean = load_clean(clean_path)
    clean_found = scan(clean)
    structured_flagged = [(s, [(f.type, f.text) for f in fs if f.type in STRUCTURED])
                          for s, fs in zip(clean, clean_found, strict=True)]
    names_flagged = [(s, [(f.type, f.text) for f in fs if f.type in ("PERSON", "LOCATION")])
                     for s, fs in zip(clean, clean_found, strict=True)]
    sensitive_flagged = [(s, [(f.type, f.text) for f in fs if f.type.startswith("SENSITIVE_")])
                         for s, fs in zip(clean, clean_found, strict=True)]
    sensitive_flagged = [x for x in sensitive_flagged if x[1]]
    structured_flagged = [x for x in structured_flagged if x[1]]
    names_flagged = [x for x in names_flagged if x[1]]
    return {
        "variants": len(cases),
        "recall": {cat: {form: round(hit / total, 4) for form, (hit, total) in forms.items()}
                   for cat, forms in recall.items()},
        "recall_by_category": {cat: round(sum(h for h, _ in forms.values()) / sum(t for _, t in forms.values()), 4)
                               for cat, forms in recall.items()},
        "misses": misses,
        "clean": {"sentences": len(clean), "data": shown(clean_path),
                  "with_structured_finding": len(structured_flagged),
                  "structured_false_positive_rate": round(len(structured_flagged) / len(clean), 4),
                  "with_person_or_location": len(names_flagged),
                  "person_location_false_positive_rate": round(len(names_flagged) / len(clean), 4),
                  "with_sensitive_finding": len(sensitive_flagged),
                  "sensitive_false_positive_rate": round(len(sensitive_flagged) / len(clean), 4),
                  "structured_findings": [{"sentence": s, "findings": f} for s, f in structured_flagged],
                  "sensitive_findings": [{"sentence": s, "findings": f} for s, f in sensitive_flagged],
                  "person_location_findings": [{"sentence": s, "findings": f} for s, f in names_flagged]},
    }
