"""Default texts of the usage charter (French and English): allowed and forbidden uses, prompt
templates, the three-question check. Plain data; kit.config validates it. Imports nothing of kit."""

from __future__ import annotations

from typing import Any

ALLOWED_USES: list[dict[str, str]] = [
    dict(fr="Rédiger ou reformuler des textes de travail (courriels, notes, comptes rendus).",
         en="Draft or rephrase work texts (e-mails, notes, minutes)."),
    dict(fr="Résumer ou traduire des documents non confidentiels.",
         en="Summarise or translate non-confidential documents."),
    dict(fr="Trouver des idées, un plan, des pistes de réflexion, à vérifier ensuite.",
         en="Brainstorm ideas or outlines, to be checked afterwards."),
    dict(fr="Poser des questions sur les documents internes indexés, en vérifiant les sources citées.",
         en="Ask about indexed internal documents, checking the sources cited."),
]
FORBIDDEN_USES: list[dict[str, str]] = [
    dict(fr="Confier à l'assistant une décision concernant une personne (recrutement, évaluation, sanction, droits).",
         en="Letting the assistant make a decision about a person (hiring, appraisal, sanction, entitlements)."),
    dict(fr="Saisir des données personnelles (noms, coordonnées, numéros d'identification) sans nécessité.",
         en="Entering personal data (names, contact details, ID numbers) without need."),
    dict(fr="Saisir des données sensibles (santé, opinions politiques, appartenance syndicale, origine, religion, "
            "vie ou orientation sexuelle, condamnations) ou couvertes par un secret.",
         en="Entering sensitive data (health, political opinions, union membership, origin, religion, sex life or "
            "orientation, convictions) or data covered by secrecy."),
    dict(fr="Reprendre une réponse telle quelle sans la relire ni la vérifier.",
         en="Using an answer as is without reading and checking it."),
    dict(fr="Faire exécuter automatiquement une action par le système : il ne fait que proposer du texte.",
         en="Having the system carry out an action automatically: it only proposes text."),
]
PROMPT_TEMPLATES: list[dict[str, Any]] = [
    dict(name=dict(fr="Reformuler un courriel", en="Rephrase an e-mail"),
                   text=dict(fr="Reformule ce courriel sur un ton courtois et clair :\n\n",
                             en="Rephrase this e-mail in a clear, courteous tone:\n\n")),
    dict(name=dict(fr="Résumer un texte", en="Summarise a text"),
                   text=dict(fr="Résume le texte suivant en cinq points :\n\n",
                             en="Summarise the following text in five points:\n\n")),
    dict(name=dict(fr="Plan de note", en="Outline a memo"),
                   text=dict(fr="Propose le plan d'une note sur le sujet suivant : ",
                             en="Suggest an outline for a memo on: ")),
]
QUIZ: list[dict[str, Any]] = [
    dict(
        question=dict(fr="Une réponse de l'assistant peut-elle être fausse tout en paraissant juste ?",
                      en="Can an answer from the assistant be wrong yet sound right?"),
        choices=[dict(fr="Oui, il faut la vérifier", en="Yes, it must be checked"),
                 dict(fr="Non, elle est toujours exacte", en="No, it is always accurate")],
        answer=0),
    dict(
        question=dict(fr="Puis-je coller le dossier médical d'un collègue pour le résumer ?",
                      en="May I paste a colleague's medical record to summarise it?"),
        choices=[dict(fr="Oui, le système est interne", en="Yes, the system is internal"),
                 dict(fr="Non, ce sont des données sensibles", en="No, this is sensitive data")],
        answer=1),
    dict(
        question=dict(fr="Qui prend la décision finale quand je m'aide de l'assistant ?",
                      en="Who makes the final decision when I use the assistant?"),
        choices=[dict(fr="L'assistant", en="The assistant"), dict(fr="Moi", en="I do")],
        answer=1),
]
