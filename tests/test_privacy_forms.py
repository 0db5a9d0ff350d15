"""Personal data in every way of writing it: no-break and narrow spaces, dashes, dots, slashes, tabs, several
spaces, a line break, fullwidth and Arabic-Indic digits, a fullwidth @, zero-width characters and soft hyphens;
found on the characters as typed, masked there, and no new finding in ordinary administrative text."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from kit.rules.privacy import Detector, Finding, apply_policy, forms, mask
from kit.rules.privacy import recognizers as rec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import privacy_forms as pf  # noqa: E402

NIR = "1 85 05 78 006 084 91"
STRUCTURED_VARIANTS = [v for v in pf.variants() if v.category != "PERSON"]


def structured(text: str) -> list[tuple[str, str]]:
    return [(c.type, text[c.start:c.end]) for c in rec.resolve(rec.find_structured(text)) if c.type in pf.STRUCTURED]


# ---------------------------------------------------------------- the plain view and its offsets


def test_plain_view_folds_every_form_and_keeps_the_way_back() -> None:
    text = "n°\u00a0１\u202f85-05\u200b78\u00ad006\t٠٨٤\u2013９１ à j\uff20ex.fr, e\u0301te\u0301"
    view = forms.normalize(text)
    assert view.text == "n° 1 85-0578006 084-91 à j@ex.fr, été"
    assert view.starts is not None and len(view.starts) == len(view.text)
    start = view.text.index("1 85")
    s, e = view.span(start, start + len("1 85-0578006 084-91"))
    assert text[s:e] == "１\u202f85-05\u200b78\u00ad006\t٠٨٤\u2013９１"  # the invisible characters inside included
    at = view.text.index("été")
    assert text[slice(*view.span(at, at + 3))] == "e\u0301te\u0301"  # a letter and its combining accent together


def test_plain_text_is_its_own_view() -> None:
    for text in ("Réunion le 12 mai à 14 h « salle B » — cf. l’ordre du jour.", "plain ascii 1 2 3", ""):
        view = forms.normalize(text)
        if "—" not in text:
            assert view.text == text and view.starts is None
    assert forms.normalize("a — b").text == "a - b"


def test_grouped_view_only_touches_separators_next_to_digits() -> None:
    grouped = forms.separated("FR76-3000.6000/0112_3456  7890\n189 Jean-Pierre a.b@c.fr GB29-NWBK")
    assert grouped is not None
    assert grouped.text == "FR76 3000 6000 0112 3456 7890 189 Jean-Pierre a.b@c.fr GB29 NWBK"
    assert forms.separated("Rien à changer ici.") is None


# ---------------------------------------------------------------- every identifier in every form (rules)


@pytest.mark.parametrize("variant", STRUCTURED_VARIANTS, ids=lambda v: f"{v.category}-{v.form}")
def test_identifier_found_in_every_form(variant: pf.Variant) -> None:
    text = variant.text
    found = [(c.type, c.start, c.end) for c in rec.resolve(rec.find_structured(text))]
    assert (variant.category, variant.start, variant.end) in found, (text, found)


@pytest.mark.parametrize("text, value", [
    (f"NIR {NIR.replace(' ', chr(0xA0))}.", NIR.replace(" ", "\u00a0")),
    ("NIR 1-85-05-78-006-084-91.", "1-85-05-78-006-084-91"),
    ("Virement sur FR76-3000-6000-0112-3456-7890-189 demain.", "FR76-3000-6000-0112-3456-7890-189"),
    ("Réf. １８５０５７８００６０８４９１ reçue.", "１８５０５７８００６０８４９１"),
    ("Carte 4970\u00a01012\u00a03456\u00a07893, merci.", "4970\u00a01012\u00a03456\u00a07893"),
    ("Carte 4970-1012-3456-7893 refusée.", "4970-1012-3456-7893"),
])
def test_issue_examples(text: str, value: str) -> None:
    assert len(structured(text)) == 1 and structured(text)[0][1] == value


@pytest.mark.parametrize("text", [
    "Réunion le 2024-05-12 à 14:30.", "Le montant est de 1\u00a0250\u00a0000\u00a0€.", "Voir l'article L. 1234-5.",
    "Article R.123-4 du code.", "Commande n° 2024-00123 livrée.", "Passage en version 2.14.3 puis 10.0.19045.4291.",
    "Envoyé le 05/06/2024 12:30.", "Ticket INC0012345 clos.", "Code postal 69003, BP 12345.", "Taux : 12,5\u00a0%.",
    "Export export_20240512_143000.csv prêt.", "ISBN 978-2-07-036822-8.", "Du 01.02.2024 au 29.02.2024.",
])
def test_ordinary_numbers_in_new_forms_are_not_identifiers(text: str) -> None:
    assert structured(text) == []


def test_clean_set_has_no_structured_finding() -> None:
    sentences = pf.load_clean()
    assert len(sentences) >= 200
    flagged = [(s, structured(s)) for s in sentences if structured(s)]
    assert flagged == []


def test_siret_written_with_dots_or_slashes_needs_its_context() -> None:
    siret = pf.luhn_complete("7328293200007")
    dotted = f"{siret[:3]}.{siret[3:6]}.{siret[6:9]}.{siret[9:]}"
    assert structured(f"SIRET {dotted}") == [("FR_SIRET", dotted)]
    slashed = f"{siret[:3]}/{siret[3:6]}/{siret[6:9]}/{siret[9:]}"
    assert structured(f"SIRET : {slashed}.") == [("FR_SIRET", slashed)]


def test_rules_time_on_long_plain_and_unusual_text_grows_linearly() -> None:
    unit = f"NIR {NIR.replace(' ', chr(0xA0))} ; réf. ２０２４-００１ ; m\u200bail j\uff20ex.fr.\n"

    def best(text: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            rec.find_structured(text)
            times.append(time.perf_counter() - started)
        return min(times)

    small, large = best(unit * 100), best(unit * 800)
    assert large < small * 8 * 2.5, (small, large)


# ---------------------------------------------------------------- through the detector (spaCy included)


@pytest.mark.parametrize("kind, text, value", [
    ("FR_NIR", f"Mon NIR est {NIR.replace(' ', chr(0xA0))}, merci.", NIR.replace(" ", "\u00a0")),
    ("FR_NIR", "Mon NIR est 1-85-05-78-006-084-91, merci.", "1-85-05-78-006-084-91"),
    ("FR_NIR", "Mon NIR est 1 85 05 78\u200b006 084 91.", "1 85 05 78\u200b006 084 91"),
    ("IBAN_CODE", "IBAN FR76-3000-6000-0112-3456-7890-189 svp", "FR76-3000-6000-0112-3456-7890-189"),
    ("EMAIL_ADDRESS", "Écris à claire.martin\uff20exemple.fr demain.", "claire.martin\uff20exemple.fr"),
    ("EMAIL_ADDRESS", "Écris à claire.mar\u200btin@exemple.fr demain.", "claire.mar\u200btin@exemple.fr"),
    ("PHONE_NUMBER", "Appelle le ０６ １２ ３４ ５６ ７８ demain.", "０６ １２ ３４ ５６ ７８"),
])
def test_detector_reports_the_characters_as_typed(detector: Detector, kind: str, text: str, value: str) -> None:
    findings = detector.scan(text)
    assert [(f.type, f.text) for f in findings if f.type == kind] == [(kind, value)]
    for f in findings:
        assert text[f.start:f.end] == f.text
    start = text.index(value)
    outcome = apply_policy(text, findings, {kind: "mask"})
    assert outcome.text.startswith(text[:start] + f"[{kind}_1]")
    assert outcome.text.endswith(text[start + len(value):])
    assert value not in outcome.text


@pytest.mark.parametrize("written", ["Ma\u200brie Dupont", "Marie\u00a0Dupont", "Marie Du\u00adpont",
                                     "Marie\u200b Dupont"])
def test_names_with_invisible_characters_are_found(detector: Detector, written: str) -> None:
    text = f"Le dossier de {written} est complet."
    persons = [f for f in detector.scan(text) if f.type == "PERSON"]
    assert [f.text for f in persons] == [written]


def test_same_value_in_two_forms_gets_one_placeholder(detector: Detector) -> None:
    text = f"NIR {NIR} puis １ ８５ ０５ ７８ ００６ ０８４ ９１ et 1-85-05-78-006-084-91."
    findings = detector.scan(text)
    assert [f.type for f in findings] == ["FR_NIR"] * 3
    assert mask(text, findings) == "NIR [FR_NIR_1] puis [FR_NIR_1] et [FR_NIR_1]."


def test_scan_many_memo_and_batches_keep_original_offsets(detector: Detector) -> None:
    texts = [f"Dossier de Ma\u200brie Dupont, NIR {NIR.replace(' ', chr(0x202F))}.", "Rien ici.",
             "a\u200b" * 1500 + " NIR 1-85-05-78-006-084-91"]
    for findings, text in zip(detector.scan_cached_many(texts), texts, strict=True):
        for f in findings:
            assert isinstance(f, Finding) and text[f.start:f.end] == f.text
    again = detector.scan_cached_many(texts)
    assert [[f.type for f in fs] for fs in again] == [["PERSON", "FR_NIR"], [], ["FR_NIR"]]
    assert again[2][0].text == "1-85-05-78-006-084-91"


def test_clean_set_through_the_detector_has_no_structured_finding(detector: Detector) -> None:
    sentences = pf.load_clean()
    flagged = [(s, [(f.type, f.text) for f in fs if f.type in pf.STRUCTURED])
               for s, fs in zip(sentences, detector.scan_many(sentences), strict=True)]
    assert [x for x in flagged if x[1]] == []


def test_bench_privacy_command_runs_the_benchmark_with_the_clean_set(tmp_path: Path) -> None:
    from helpers import run_kit

    r = run_kit("bench", "privacy", "--help", cwd=ROOT)
    assert r.returncode == 0 and "--clean" in r.stdout and "--no-scaling" in r.stdout, r.stderr


@pytest.mark.parametrize("text, value", [
    ("NIR 185 057 800 608 491, merci.", "185 057 800 608 491"),
    ("Mon numéro : 18 505 78 00 60 84 91.", "18 505 78 00 60 84 91"),
    ("NIR 1850-5780-0608-491 reçu.", "1850-5780-0608-491"),
    ("Virement sur Fr76 3000 6000 0112 3456 7890 189 demain.", "Fr76 3000 6000 0112 3456 7890 189"),
    ("IBAN FR14 2004 1010 0505 0001 3m02 606 à jour.", "FR14 2004 1010 0505 0001 3m02 606"),
    ("IBAN Gb29 nwbk 6016 1331 9268 19 à jour.", "Gb29 nwbk 6016 1331 9268 19"),
    ("Joignable au (+33) 6 12 34 56 78 le matin.", "(+33) 6 12 34 56 78"),
    ("Joignable au +33 06 12 34 56 78 le matin.", "+33 06 12 34 56 78"),
    ("Joignable au 0033 (0) 6 12 34 56 78 le matin.", "0033 (0) 6 12 34 56 78"),
])
def test_identifiers_grouped_or_cased_otherwise_are_found(text: str, value: str) -> None:
    """The same identifiers grouped otherwise than usual (a NIR in threes), in mixed case (an IBAN typed
    ``Fr76``, letters of the account in lower case) or a French number written ``(+33) 6`` or ``+33 06``."""
    found = structured(text)
    assert len(found) == 1 and found[0][1] in (value, value.lstrip("(")), (text, found)


@pytest.mark.parametrize("text, value", [
    ("Joignable au 06 12.34.56.78 le matin.", "06 12.34.56.78"),
    ("Carte 4970-1012 3456.7893 refusée.", "4970-1012 3456.7893"),
    ("SIRET 732 829.320-00074 du fournisseur.", "732 829.320-00074"),
    ("IBAN FR 76 3000 6000 0112 3456 7890 189 à jour.", "FR 76 3000 6000 0112 3456 7890 189"),
])
def test_identifiers_with_mixed_separators_are_found_whole(text: str, value: str) -> None:
    """Separators mixed inside a payment card or a SIRET (after its name), a phone number whose last groups
    look like an IP address, a space inside an IBAN's country code and key: one finding, the whole value."""
    found = [(c.type, text[c.start:c.end]) for c in rec.resolve(rec.find_structured(text))]
    assert len(found) == 1 and found[0][1] == value and found[0][0] != "IP_ADDRESS", (text, found)
