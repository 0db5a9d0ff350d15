"""Recognizers behind :mod:`kit.rules.privacy.detector`: checksums, patterns and name/place rules.

Everything here is plain Python on strings, plus rules that read an already parsed spaCy
``Doc``; nothing imports spaCy, so the validators can be used (and tested) on
their own. :mod:`kit.rules.privacy.detector` runs them on each piece of text and its parse.

Structured identifiers are only reported when their checksum holds: NIR (key = 97 - n mod 97,
Corsica 2A/2B read as 19/18), IBAN (ISO 13 616 mod 97), SIREN/SIRET (Luhn, plus the La Poste
SIRET rule), payment cards (issuer prefix, length, Luhn). Names and places come from the spaCy
NER, filtered by context rules, and from a first-name lexicon and courtesy titles.

Linear cost: every rule reads a bounded window around its match (never the text from its start), the
language guess is made once per sentence, and :func:`resolve` marks the characters it has taken.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span

from kit.rules.privacy.identifiers import (  # noqa: F401 - the recognizers' public surface
    _LOW,
    _UP,
    CITIES,
    PRIORITY,
    Candidate,
    _cand,
    card_valid,
    find_addresses,
    find_structured,
    iban_valid,
    luhn_valid,
    nir_shaped,
    nir_valid,
    siren_valid,
    siret_valid,
    structured_in,
)

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
_COMMON_AFTER_NAME = {"est", "a", "va", "sont", "était", "avait", "sera", "aussi", "m'a", "nous", "vous", "lui",
                      "is", "was", "has", "had", "will", "also", "said", "says", "who", "qui", "dont", "et", "and"}
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


_OPENERS = frozenset(" \t'\"«“‘(")


def _sentence_initial(text: str, pos: int) -> bool:
    """True at the start of the text or of a sentence, past spaces, quotes and brackets."""
    while pos > 0 and text[pos - 1] in _OPENERS:
        pos -= 1
    return pos == 0 or text[pos - 1] in ".!?:;\n"


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
                surname = _CAPS_BEFORE.search(text, max(0, s - 100), s) if i == 0 else None
                if found and surname and surname.group(1) not in _ACRONYMS:  # "DUPONT Jean"
                    found = _cand("PERSON", surname.start(1), found.end, found.score)
                if found:
                    out.append(found)
                break
    out += cue_names(text, doc)
    if doc is not None:
        out += _ner_candidates(text, doc)
    return out


# A word for a colleague or relative (with a possessive or an article) or a courtesy title: the name that
# follows may be written in lower case ("mon collègue pierre durand", "M. dupont", "my colleague john smith").
_CUE = re.compile(
    r"(?<![\w])(?:(?:(?:mon|ma|notre|votre|son|sa|my|our|your|his|her)\s+(?:nouvel(?:le)?\s+|new\s+)?"
    r"(?:coll[eè]gue|colleague|co-?worker|voisine?|neighbou?r|amie?|friend|chef|boss|manager|responsable|"
    r"stagiaire|intern|assistante?|adjointe?|collaborat(?:eur|rice)|cousine?|fr[eè]re|s[oœ]eur|brother|sister|"
    r"fils|fille|son|daughter|mari|femme|[ée]pouse|husband|wife|cliente?))|(?:l['’]agente?|l['’]employée?|"
    r"(?:le|la)\s+(?:salariée?|stagiaire|candidate?)|the\s+(?:employee|candidate|applicant|intern)))"
    r"\s+(?=[a-zà-ÿ])", re.IGNORECASE)
_LOWER_TITLE = re.compile(r"(?<![\w])(?:M\.|Mme|Mlle|Mr\.?|Mrs\.?|Ms\.?|Dr\.?|[Mm]adame|[Mm]onsieur)\s+(?=[a-zà-ÿ])")
_LOWER_WORD = re.compile(r"[a-zà-ÿ]+(?:-[a-zà-ÿ]+)?(?![\w'’@.-]\w)")
_NOT_A_NAME_POS = frozenset(("VERB", "AUX", "ADP", "DET", "PRON", "CCONJ", "SCONJ", "ADV", "NUM", "PUNCT"))


def _could_be_name(word: str, start: int, doc: Doc | None) -> bool:
    """A lower-case word that may be a surname: not a function word, not tagged as a verb, article..."""
    if len(word) < 2 or word in _FR_WORDS or word in _EN_WORDS or word in _COMMON_AFTER_NAME or word in TITLES:
        return False
    span = doc.char_span(start, start + len(word), alignment_mode="expand") if doc is not None else None
    return span is None or not len(span) or span[0].pos_ not in _NOT_A_NAME_POS


def cue_names(text: str, doc: Doc | None) -> list[Candidate]:
    """Names in lower case after a cue: a first name of the lexicon (then perhaps a surname) after a word for a
    colleague or relative, a surname (or first name and surname) after a courtesy title."""
    out: list[Candidate] = []
    for cues, titled in ((_CUE, False), (_LOWER_TITLE, True)):
        for cue in cues.finditer(text):
            first = _LOWER_WORD.match(text, cue.end())
            if first is None:
                continue
            is_first = _is_first_name(first.group(), False)
            if not (is_first or (titled and _could_be_name(first.group(), first.start(), doc))):
                continue
            end = first.end()
            second = _LOWER_WORD.match(text, end + 1) if text[end:end + 1] == " " else None
            if second and is_first and _could_be_name(second.group(), second.start(), doc):
                end = second.end()
            out.append(_cand("PERSON", first.start(), end, 0.8))
    return out


def _language_votes(tokens: Doc | Span) -> int:
    """English function words minus French ones: > 0 looks English, < 0 looks French."""
    words = [t.lower_ for t in tokens]
    return sum(w in _EN_WORDS for w in words) - sum(w in _FR_WORDS for w in words)


def _ner_candidates(text: str, doc: Doc) -> list[Candidate]:
    out: list[Candidate] = []
    votes: dict[int, int] = {}  # per sentence (by its first token), each counted once
    doc_votes: int | None = None
    for ent in doc.ents:
        if ent.label_ not in ("PER", "LOC"):
            continue
        if ent.label_ == "PER":
            sent = ent.sent
            if sent.start not in votes:
                votes[sent.start] = _language_votes(sent)
            if doc_votes is None:
                doc_votes = _language_votes(doc)
            if votes[sent.start] > 0 or (doc_votes > 0 and not votes[sent.start] < 0):
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
    """Non-overlapping selection: same-type overlaps merge, otherwise priority then score win.

    After the merge, the spans of one type are disjoint, so marking the characters taken costs at
    most the text's length per type."""
    merged: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.type, c.start)):
        last = merged[-1] if merged else None
        if last and last.type == c.type and c.start < last.end:
            merged[-1] = Candidate(c.type, last.start, max(last.end, c.end),
                                   max(last.score, c.score), max(last.priority, c.priority))
        else:
            merged.append(c)
    taken = bytearray(max((c.end for c in merged), default=0))
    chosen: list[Candidate] = []
    for c in sorted(merged, key=lambda c: (-c.priority, -c.score, c.start - c.end, c.start)):
        if taken.find(1, c.start, c.end) < 0:
            taken[c.start:c.end] = b"\x01" * (c.end - c.start)
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


