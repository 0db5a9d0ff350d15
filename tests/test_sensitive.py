"""Sensitive data about a person (GDPR article 9): health, religion, political opinions, union membership,
sex life or orientation, ethnic origin, criminal convictions; and names written in lower case after a cue."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from kit.rules.privacy import PII_TYPES, Detector, apply_policy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SENSITIVE = ("SENSITIVE_HEALTH", "SENSITIVE_RELIGION", "SENSITIVE_POLITICS", "SENSITIVE_UNION",
             "SENSITIVE_SEXUALITY", "SENSITIVE_ORIGIN", "SENSITIVE_CRIMINAL")


def kinds(detector: Detector, text: str) -> set[str]:
    return {f.type for f in detector.scan(text)}


# Sentences that are not in the benchmark set: other people, other wording.
ABOUT_A_PERSON = [
    ("SENSITIVE_HEALTH", "Mon adjoint est en congé maladie pour une hernie discale."),
    ("SENSITIVE_HEALTH", "Céline a été diagnostiquée bipolaire au printemps."),
    ("SENSITIVE_HEALTH", "Our accountant is undergoing chemotherapy."),
    ("SENSITIVE_HEALTH", "He has been off work with stress since Monday."),
    ("SENSITIVE_RELIGION", "Le nouveau chauffeur est musulman et prie à midi."),
    ("SENSITIVE_RELIGION", "My assistant is a devout Buddhist."),
    ("SENSITIVE_POLITICS", "La comptable milite au Parti communiste."),
    ("SENSITIVE_POLITICS", "Her husband is a Labour activist."),
    ("SENSITIVE_UNION", "Le magasinier est délégué syndical Force ouvrière."),
    ("SENSITIVE_UNION", "The new nurse is a union member."),
    ("SENSITIVE_SEXUALITY", "Le gardien est homosexuel."),
    ("SENSITIVE_SEXUALITY", "Her daughter is a lesbian."),
    ("SENSITIVE_ORIGIN", "La secrétaire est d'origine tunisienne."),
    ("SENSITIVE_ORIGIN", "The cashier is of Somali descent."),
    ("SENSITIVE_CRIMINAL", "Le livreur a été condamné pour recel."),
    ("SENSITIVE_CRIMINAL", "The caretaker was convicted of burglary."),
]

IMPERSONAL = [
    "La politique de santé publique du ministère sera débattue au Parlement.",
    "The union budget for next year was published.",
    "Le service des relations syndicales organise une réunion mardi.",
    "Les jours fériés religieux figurent dans le calendrier de l'année.",
    "L'article 222-33 du code pénal réprime le harcèlement sexuel.",
    "Indiquez l'origine du produit sur la facture.",
    "Le bilan d'orientation professionnelle est proposé à tous les agents.",
    "The criminal law course starts in September.",
    "The health insurance contract is renewed every January.",
    "La commission des affaires sociales a voté le texte.",
]


@pytest.mark.parametrize(("category", "text"), ABOUT_A_PERSON)
def test_sensitive_data_about_a_person_is_found(detector: Detector, category: str, text: str) -> None:
    assert category in kinds(detector, text), detector.scan(text)


@pytest.mark.parametrize("text", IMPERSONAL)
def test_the_same_words_used_impersonally_are_not_flagged(detector: Detector, text: str) -> None:
    assert not {k for k in kinds(detector, text) if k.startswith("SENSITIVE_")}, detector.scan(text)


def test_the_span_is_the_sensitive_expression_not_the_sentence(detector: Detector) -> None:
    text = "Pierre est en arrêt maladie pour dépression depuis lundi, merci de prévenir l'équipe."
    health = [f for f in detector.scan(text) if f.type == "SENSITIVE_HEALTH"]
    assert len(health) == 1
    assert "maladie" in health[0].text and "dépression" in health[0].text
    assert "merci" not in health[0].text and "Pierre" not in health[0].text
    assert text[health[0].start:health[0].end] == health[0].text


def test_offsets_stay_on_the_text_as_typed(detector: Detector) -> None:
    text = "Mon\u00a0collègue est\u00a0séro\u00adpositif, il ne veut pas que cela se sache."
    health = [f for f in detector.scan(text) if f.type == "SENSITIVE_HEALTH"]
    assert health and text[health[0].start:health[0].end] == health[0].text
    assert "\u00ad" in health[0].text


def test_accents_and_case_are_folded(detector: Detector) -> None:
    assert "SENSITIVE_HEALTH" in kinds(detector, "ELLE EST ENCEINTE DE TROIS MOIS.")
    assert "SENSITIVE_RELIGION" in kinds(detector, "mon collegue est athee.")


@pytest.mark.parametrize(("text", "name"), [
    ("mon collègue pierre durand est malade", "pierre durand"),
    ("ma collègue marie a appelé ce matin", "marie"),
    ("Envoie le dossier à M. dupont avant midi.", "dupont"),
    ("l'agent jean martin est absent", "jean martin"),
    ("my colleague john smith is away", "john smith"),
])
def test_lowercase_names_after_a_cue_are_names(detector: Detector, text: str, name: str) -> None:
    assert ("PERSON", name) in [(f.type, f.text) for f in detector.scan(text)], detector.scan(text)


@pytest.mark.parametrize("text", [
    "mon collègue du service informatique arrive demain",
    "ma collègue est partie en réunion",
    "mon collègue informaticien a réparé l'imprimante",
    "my colleague from accounting sent the invoice",
    "l'agent chargé du dossier répondra",
])
def test_ordinary_words_after_a_cue_are_not_names(detector: Detector, text: str) -> None:
    assert "PERSON" not in kinds(detector, text), detector.scan(text)


def test_the_sick_colleague_of_the_issue(detector: Detector) -> None:
    found = {(f.type, f.text) for f in detector.scan("mon collègue pierre durand est malade")}
    assert ("PERSON", "pierre durand") in found
    assert ("SENSITIVE_HEALTH", "malade") in found


def test_every_category_is_a_known_type_with_warn_by_default() -> None:
    from kit.config import template
    from kit.config.sections import DEFAULT_PII_ACTIONS, Policy

    for kind in SENSITIVE:
        assert kind in PII_TYPES
        assert DEFAULT_PII_ACTIONS[kind] == "warn"
        assert f"{kind}: warn" in template()
    policy = Policy(pii_actions={"SENSITIVE_HEALTH": "block"})
    assert policy.pii_actions["SENSITIVE_HEALTH"] == "block"
    outcome = apply_policy("Il est malade.", [], {"SENSITIVE_HEALTH": "block"})
    assert not outcome.is_blocked


def test_the_charter_names_every_sensitive_category() -> None:
    from kit.config.sections import DEFAULT_FORBIDDEN

    sensitive = next(t for t in DEFAULT_FORBIDDEN if "sensibles" in t.fr)
    for word in ("santé", "opinions", "syndicale", "origine", "religion", "sexuelle", "condamnations"):
        assert word in sensitive.fr
    for word in ("health", "opinions", "union", "origin", "religion", "sex life", "convictions"):
        assert word in sensitive.en


def test_policy_actions_apply_to_sensitive_findings(detector: Detector) -> None:
    text = "Ma collègue Sophie est enceinte."
    findings = detector.scan(text)
    assert apply_policy(text, findings, {"SENSITIVE_HEALTH": "block"}).blocked == ["SENSITIVE_HEALTH"]
    masked = apply_policy(text, findings, {"SENSITIVE_HEALTH": "mask", "PERSON": "allow"})
    assert "[SENSITIVE_HEALTH_1]" in masked.text and "enceinte" not in masked.text
    assert apply_policy(text, findings, {}, "warn").warned == ["PERSON", "SENSITIVE_HEALTH"]


def test_browser_labels_every_category_in_both_languages() -> None:
    for lang in ("fr", "en"):
        labels = yaml.safe_load((ROOT / "ui" / "i18n" / f"{lang}.yaml").read_text(encoding="utf-8"))
        categories = labels["pii"]["categories"]
        for kind in PII_TYPES:
            assert categories.get(kind), (lang, kind)


def test_benchmark_reports_recall_and_false_positives_per_category(detector: Detector) -> None:
    from benchmarks.privacy import evaluate_sensitive

    result = evaluate_sensitive(detector=detector)
    assert result["sentences"] >= 300 and result["negatives"] >= 150
    for kind in SENSITIVE:
        row = result["per_category"][kind]
        assert row["sentences"] >= 20
        assert 0.0 <= row["recall"] <= 1.0 and 0.0 <= row["false_positive_rate"] <= 1.0
    assert result["per_category"]["SENSITIVE_HEALTH"]["recall"] >= 0.8
    assert result["negatives_flagged"] / result["negatives"] <= 0.05


# Indirect wording, verbs and adjectives, chat register: not in any benchmark set. Each line exercises a
# lexicon built from the domain (conditions and care, faiths and practices, parties and activism, unions
# and strikes, orientation and gender identity, countries and demonyms, offences and sentences).
INDIRECT = [
    ("SENSITIVE_HEALTH", "la gestionnaire attend un bébé pour l'automne"),
    ("SENSITIVE_HEALTH", "Mon binôme voit un psychiatre toutes les semaines."),
    ("SENSITIVE_HEALTH", "il se remet doucement de son infarctus"),
    ("SENSITIVE_HEALTH", "Our cashier is recovering from a knee operation."),
    ("SENSITIVE_HEALTH", "Le soudeur a des séances de dialyse le mardi."),
    ("SENSITIVE_RELIGION", "La vendeuse est de confession musulmane."),
    ("SENSITIVE_RELIGION", "mon voisin fait le jeune du ramadan"),
    ("SENSITIVE_RELIGION", "Our designer was baptised last Easter and now attends a Baptist church."),
    ("SENSITIVE_POLITICS", "Le serveur tracte pour les Insoumis le dimanche."),
    ("SENSITIVE_POLITICS", "My neighbour donates to the Conservative Party."),
    ("SENSITIVE_UNION", "Le peintre a fait grève avec la CGT."),
    ("SENSITIVE_UNION", "She went on strike with her union in May."),
    ("SENSITIVE_SEXUALITY", "le graphiste est bi et ne s'en cache pas"),
    ("SENSITIVE_SEXUALITY", "Notre hôtesse est une femme transgenre."),
    ("SENSITIVE_ORIGIN", "Le plombier est né en Algérie."),
    ("SENSITIVE_ORIGIN", "Our designer was born in Ghana."),
    ("SENSITIVE_ORIGIN", "La vendeuse a des origines vietnamiennes."),
    ("SENSITIVE_ORIGIN", "le soudeur est d'ascendance marocaine"),  # a frame after an elided "de"
    ("SENSITIVE_CRIMINAL", "Le vigile a fait de la prison."),
    ("SENSITIVE_CRIMINAL", "il a fait de la taule pour trafic"),
    ("SENSITIVE_CRIMINAL", "The welder was fined for drink driving."),
]

INDIRECT_IMPERSONAL = [
    "Le congé de maternité est allongé pour les naissances multiples.",
    "La grève des contrôleurs perturbe les trains ce matin.",
    "Le stagiaire est né en 2002 à la maternité de Nantes.",
    "The candidate was born in 1985.",
    "Le chef de projet est originaire de la région.",
    "La dialyse est remboursée par l'Assurance maladie.",
    "Le serveur de fichiers a été arrêté pour maintenance.",
    "Our manager is expecting the figures by Monday.",
    "La prison de la Santé a rouvert en 2019.",
]


@pytest.mark.parametrize(("category", "text"), INDIRECT)
def test_indirect_wording_about_a_person_is_found(detector: Detector, category: str, text: str) -> None:
    assert category in kinds(detector, text)


@pytest.mark.parametrize("text", INDIRECT_IMPERSONAL)
def test_the_same_vocabulary_impersonally_is_not_flagged(detector: Detector, text: str) -> None:
    assert not {k for k in kinds(detector, text) if k.startswith("SENSITIVE_")}


def test_lexicons_are_package_data_read_once() -> None:
    from kit.rules.privacy import sensitive_words

    assert len(sensitive_words.COUNTRIES) > 150 and len(sensitive_words.CONDITIONS) > 200
    assert "algerienne" in sensitive_words.DEMONYMS  # inflected: masculine, feminine and plural forms
