"""Frames of the sensitive-data rules built on the domain lexicons of
:mod:`kit.rules.privacy.sensitive_words`: a verb, preposition or noun that says what a person has, does,
belongs to or went through, followed by any word of a category's lexicon. The frames are generic (``voit
un`` + any care worker, ``de confession`` + any faith, ``né en`` + any country, ``pour`` + any offence), so
that a word added to a lexicon works in every frame. Each frame is a regex on the folded text (lower case,
no accents) with the sensitive expression in the group ``x``; :mod:`kit.rules.privacy.sensitive` compiles
them once and requires a person in the same clause, as for its other patterns.
"""

from __future__ import annotations

import re

from kit.rules.privacy import sensitive_words as w


def alt(words: list[str] | frozenset[str]) -> str:
    """A regex alternation of lexicon entries, factored as a trie (shared beginnings tried once, so a word
    that starts no entry fails at its first letters); a space in an entry matches any run of spaces or a
    hyphen, a hyphen matches a space, a hyphen or nothing. The longest entry wins."""
    trie: dict[str, dict] = {}
    for word in set(words):
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return "(?:" + _trie_regex(trie) + ")"


def _char(c: str) -> str:
    return r"[\s-]+" if c == " " else r"[\s-]?" if c == "-" else re.escape(c)


def _trie_regex(node: dict[str, dict]) -> str:
    ends = "" in node
    branches = [_char(c) + _trie_regex(child) for c, child in sorted(node.items()) if c]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if ends else body


def fr_verb(stem: str) -> str:
    """A French first-group verb (``milit`` for militer): present, imperfect, infinitive, participles."""
    return stem + r"(?:e|es|ent|ais|ait|aient|er|ee?s?|ant|ons|ez)"


def en_verb(base: str) -> str:
    """An English verb: base, third person, past, gerund (a final ``e`` dropped before -ed and -ing)."""
    stem = base[:-1] if base.endswith("e") else base
    return rf"(?:{base}s?|{stem}ed|{stem}ing)"


_DET = r"(?:(?:un|une|le|la|les|des|du|de|son|sa|ses|leur|a|an|the|his|her|their|some)\s+|[dl]'\s*)*"
_FILL = r"(?:[\w'-]+\s+){0,3}?"  # up to three words between a verb and what it governs
_BE = r"(?:est|etait|sont|etaient|sera|is|was|are|were|'s|s'est)"

STRONG = alt(w.STRONG_CONDITIONS)
CONDITION = alt(w.CONDITIONS)
BODY = alt(w.BODY_PARTS)
CARE = alt(w.CARE_WORKERS)
PLACE_OF_CARE = alt(w.PLACES_OF_CARE)
SUBSTANCE = alt(w.SUBSTANCES)
MEDICAL_ACT = (rf"(?:(?:operation|intervention|chirurgie|surgery|greffe|transplant)\s+(?:du|de\s+la|de\s+l'|des|d'|"
               rf"on\s+(?:his|her|their|the)|to\s+(?:his|her|their))\s*{BODY}|{BODY}\s+(?:surgery|operation|replacement|transplant))")
HEALTH = [
    rf"(?:voi[ts]|voyait|consult\w*|suivie?s?\s+par|sees?|seeing|saw|visits|visiting|consults?|consulting)\s+{_DET}(?P<x>{CARE})",
    rf"(?:rendez-vous|rdv|appointments?|consultation)\s+(?:chez|with|at|a)\s+{_DET}(?:l'\s*)?(?P<x>{CARE}|{PLACE_OF_CARE})",
    rf"(?P<x>(?:seances?|sessions?|cures?)\s+de\s+{CONDITION}|{CONDITION}\s+(?:sessions|appointments))",
    r"(?P<x>attend(?:s|ait|aient|ent)?\s+(?:un|une|des|son|leur)\s+(?:enfant|bebe|heureux\s+evenement|jumeaux|"
    r"jumelles|deuxieme|troisieme|premier)|accouch\w*|(?:is|are|was|'s)\s+expecting(?:\s+(?:a\s+baby|twins|a\s+child|"
    r"a\s+boy|a\s+girl|her\s+\w+\s+(?:child|baby)|their\s+\w+\s+(?:child|baby)))(?=\W|$)|gave\s+birth|give\s+birth|"
    r"giving\s+birth|en\s+conge\s+(?:de\s+)?maternite|on\s+maternity\s+leave)",
    rf"(?:se\s+remet\w*|remise?s?|recover\w*|recuperating|recuperat\w*|convalesc\w*)\s+(?:de|d'|du|des|from)\s*{_DET}(?:[\w-]+\s+)?(?P<x>{STRONG}|{MEDICAL_ACT}|operation|surgery|intervention)",
    rf"(?:suite\s+a|a\s+la\s+suite\s+d[e']|a\s+cause\s+d[e']|en\s+raison\s+d[e']|after|following|due\s+to|because\s+of)\s*{_DET}(?P<x>{STRONG}|{MEDICAL_ACT})",
    rf"(?:son|sa|ses|his|her|their)\s+(?:[\w-]+\s+)?(?P<x>{STRONG}|{MEDICAL_ACT})(?![\w-])",
    rf"(?:a|ont|avait|has|have|had|having|fait|a\s+fait|subi\w*|undergo\w*|underwent)\s+{_DET}(?:[\w-]+\s+)?(?P<x>{STRONG}|{MEDICAL_ACT})",
    rf"(?:se\s+bat|se\s+battait|lutte|luttait|struggl\w+|battl\w+|fighting|fights|addicted|accro|dependante?s?|addicte?s?)\s+(?:contre|with|against|to|a|au|aux|de)\s+{_DET}(?P<x>{STRONG}|{SUBSTANCE})",
    r"(?:prend|prennent|prenait|takes|taking|took|sous)\s+(?:des|un|une|du|de\s+l'|the|his|her|their|some)?\s*"
    r"(?P<x>antidepresseurs|anxiolytiques|somniferes|cachets|medicaments|neuroleptiques|insuline|lithium|"
    r"antidepressants|medication|pills|painkillers|insulin|lithium|methadone)",
    rf"(?:hospitalise\w*|admise?s?\s+(?:a|aux|en)|internee?s?\s+(?:en|a)|checked\s+(?:himself\s+|herself\s+|themselves\s+)?into|admitted\s+to|"
    rf"{_BE}\s+(?:encore\s+|still\s+|toujours\s+|now\s+)?(?:a\s+l'|a\s+la|aux|au|en|in)\s*)\s*{_DET}(?P<x>{PLACE_OF_CARE})",
    rf"{_BE}\s+(?:encore\s+|toujours\s+|still\s+)?(?:en|in)\s+(?:pleine?\s+)?(?P<x>depression|burn-?out|convalescence|reeducation|reanimation|"
    r"soins\s+intensifs|rechute|remission|rehab|intensive\s+care|detox|sevrage)",
    r"(?P<x>reconnaissance\s+(?:de\s+(?:son\s+)?|du\s+statut\s+de\s+)?(?:handicap|travailleur\s+handicape)|diagnosed\s+with\s+[\w'-]+(?:\s+[\w'-]+)?)",
]

FAITH = alt(w.FAITHS)
RELIGION_NAME = alt(w.RELIGIONS)
OBSERVANCE = alt(w.OBSERVANCES)
RITE = alt(w.RITES)
WORSHIP = alt(w.WORSHIP)
GARMENT = alt(w.RELIGIOUS_GARMENTS)
RELIGION = [
    rf"(?P<x>(?:de|of\s+the)\s+(?:confession|religion|foi|culture|tradition|faith)\s+{FAITH}|(?:raised|brought\s+up|"
    rf"elevee?s?\s+(?:dans\s+la\s+religion|en))\s+(?:a\s+|an\s+)?{FAITH}|{FAITH}\s+by\s+faith)",
    rf"(?:converti\w*|convert\w*|se\s+convert\w*)\s+(?:a|au|to)\s+(?:l'\s*|la\s+|le\s+|the\s+)?(?P<x>{RELIGION_NAME}|{FAITH})",
    rf"(?:fai[ts]|faisait|observe\w*|respecte\w*|jeun\w*|fasts?|fasting|fasted|keeps?|keeping|kept|celebrat\w*|celebre\w*|pendant|during)\s+"
    rf"(?:le\s+|la\s+|les\s+|l'|du\s+|the\s+|jeune\s+(?:du\s+|de\s+)|pour\s+(?:le\s+)?|for\s+)?(?P<x>{OBSERVANCE})",
    rf"(?:fai[ts]|faisait|a\s+fait|fera|recu|recoit|received|had|made|celebrated|went\s+on|goes\s+on|go\s+on|part\s+en|took|takes|took\s+part\s+in)\s+"
    rf"(?:sa|son|ses|le|la|un|une|his|her|their|a|the|l')?\s*(?:[\w-]+\s+)?(?P<x>{RITE})(?![\w-])",
    r"(?P<x>(?:a\s+ete\s+|se\s+fait\s+|s'est\s+fait\s+|was\s+|got\s+|been\s+)(?:baptise|baptisee|baptized|baptised|christened|confirmed))",
    rf"(?:va|vont|allait|se\s+rend\w*|frequente\w*|attends?|attended|attending|goes\s+to|went\s+to|prie\w*|prays?|praying)\s+"
    rf"(?:a\s+la\s+|au\s+|a\s+l'|a\s+|dans\s+|at\s+)?(?:une?\s+|la\s+|le\s+|l'|the\s+|a\s+|an\s+|his\s+|her\s+|their\s+|sa\s+|son\s+)?"
    rf"(?:[\w-]+\s+)?(?P<x>{WORSHIP}(?:\s+{FAITH})?)(?![\w-])",
    r"(?:goes\s+to|went\s+to|attends)\s+(?P<x>(?:friday\s+|sunday\s+)?(?:prayers|mass|services|church|mosque|synagogue))",
    rf"(?:port\w*|wears?|wearing|wore)\s+(?:le|la|un|une|sa|son|a|an|the|his|her)\s+(?P<x>{GARMENT})(?![\w-])",
    rf"{_BE}\s+(?:[\w-]+\s+){{0,2}}?(?:un|une|a|an)?\s*(?:fervente?|devout|practising|practicing|pratiquante?|observant|croyante?)\s+(?P<x>{FAITH})",
    rf"{_BE}\s+(?:une?\s+|a\s+|an\s+)?(?:tres\s+|very\s+|ouvertement\s+|openly\s+|now\s+|desormais\s+)?(?P<x>{FAITH})(?![\w-])",
]

_NOT_A_PARTY = r"(?!labour\s+(?:rights|laws?|market|costs?|reform|shortage|force|day|relations))"  # labour law
PARTY = rf"(?:{_NOT_A_PARTY}{alt(w.PARTIES)})"
POLITICAL = alt(w.POLITICAL_ADJ)
_ACT_FR = "|".join(fr_verb(s) for s in ("milit", "tract", "soutien", "vot", "adher", "encart", "manifest", "colla"))
POLITICS = [
    rf"(?:{_ACT_FR}|soutient|soutiennent|colle\w*\s+des\s+affiches|distribu\w*\s+des\s+tracts|fai[ts]\s+campagne|"
    rf"a\s+fait\s+campagne|membres?|sympathisant\w*|partisan\w*|electeur\w*|electrice\w*|proches?|"
    rf"{en_verb('vote')}|{en_verb('campaign')}|canvass\w*|{en_verb('volunteer')}|{en_verb('donate')}|{en_verb('support')}|"
    rf"supporters?|members?|{en_verb('back')}|leaflet\w*|joined|joins|activists?|card-carrying)\s+{_FILL}(?P<x>{PARTY})(?![\w-])",
    rf"(?P<x>(?:{PARTY}|{POLITICAL})\s+(?:party\s+)?(?:supporter|voter|member|activist|campaigner|donor|sympathi[sz]er)s?)(?![\w-])",
    rf"{_BE}\s+(?:[\w-]+\s+){{0,2}}?(?:un|une|a|an)?\s*(?:ancien(?:ne)?|former|hardcore|die-hard|diehard|staunch|lifelong|"
    rf"card-carrying|fervent\w*|convaincue?|militante?|vrai|true|loyal)?\s*(?P<x>{POLITICAL}|{PARTY})(?![\w-])",
    r"(?P<x>manifest\w*\s+contre\s+[\w'-]+(?:\s+[\w'-]+)?|(?:protest\w*|demonstrat\w*|marche\w*|marched|marching)\s+against\s+[\w'-]+"
    r"(?:\s+[\w'-]+)?|(?:was|were|is|are)\s+at\s+the\s+(?:protest|demo|march|rally)\b)",
]

UNION_NAME = alt(frozenset(w.UNIONS) - w.COMMON_WORD_UNIONS)
ANY_UNION = alt(w.UNIONS)
_SYNDICAT = (r"syndicats?(?!\s+(?:des\s+copro\w*|de\s+copro\w*|intercommunal|mixte|d'initiative|de\s+communes|"
             r"des\s+eaux|patronal\w*|agricole|du\s+logement))")
UNION = [
    r"(?P<x>(?:fai[ts]|faisait|faisaient|a\s+fait|ont\s+fait|font|faire)\s+(?:la\s+)?greve|(?:en|se\s+mettre\s+en|s'est\s+mise?\s+en)\s+greve(?!\s+(?:des|du|de\s+la))"
    r"|grevistes?|(?:went|go|goes|going|is|was|are|were|been|be)\s+on\s+strike|on\s+the\s+picket\s+line|picket(?:ed|ing))",
    rf"(?:adherent\w*|membres?|elue?s?|secretaire|tresorier\w*|militant\w*|milite\w*|encarte\w*|syndique\w*|adhere\w*|"
    rf"rejoint|carte|bureau|section|liste|candidat\w*|representant\w*|delegue\w*|greve)\s+{_FILL}(?P<x>{UNION_NAME}|{_SYNDICAT})(?![\w-])",
    rf"(?:adherent\w*|membres?|syndique\w*|carte|milite\w*|delegue\w*|representant\w*)\s+(?:a|au|a\s+la|chez|de\s+la|de|du)?\s*(?P<x>{ANY_UNION}(?:[\s-]\w+)?)(?![\w-])",
    r"(?P<x>elue?s?\s+(?:titulaire\s+|suppleante?\s+)?(?:au|du|sur\s+la\s+liste)?\s*(?:cse|cssct|comite\s+social\s+et\s+economique|personnel)"
    r"|membre\s+du\s+(?:cse|cssct)|representante?s?\s+(?:de\s+(?:la\s+)?section\s+syndicale|du\s+personnel|des\s+salaries)"
    r"|defenseu(?:r|se)\s+syndica\w+|conseill\w+\s+prud'?hom\w+|heures\s+de\s+delegation)",
    rf"(?:members?|reps?|representatives?|stewards?|delegates?|officials?|activists?|convenors?|organi[sz]ers?|dues|strike)\s+"
    rf"{_FILL}(?P<x>{UNION_NAME}|(?:trade\s+|labou?r\s+)?unions?)(?![\w-])",
    rf"(?P<x>{ANY_UNION}\s+(?:shop\s+)?(?:steward|rep|representative|convenor|member|delegate|official|activist|organi[sz]er)s?)(?![\w-])",
]

SEXUALITY = [
    rf"{_BE}\s+(?:[\w-]+\s+)?(?:un|une|a|an)?\s*(?P<x>(?:femme|homme|fille|garcon|personne|woman|man|person|girl|boy)\s+"
    r"(?:trans|transgenre|transsexuelle?|transgender)|(?:trans|transgender)\s+(?:woman|man|person|girl|boy)|homos?|bi|bie|bis|"
    r"libertine?s?|echangistes?|queer|genderfluid|gender-fluid|genderqueer|ace|aromantique|aromantic|travesti\w*)(?![\w-])",
    r"(?P<x>(?:pronom|pronoun)s?\s+(?:iel|ielle|they|ze|xe)|they/them|she/they|he/they|iel/\w+)",
    r"(?P<x>(?:clubs?|soirees?|sites?)\s+(?:libertin|echangist|gay|lesbien)\w*)",
    r"(?P<x>(?:his)\s+(?:husband|boyfriend)|(?:her)\s+(?:wife|girlfriend))(?![\w-])",
]

COUNTRY = alt(w.COUNTRIES)
DEMONYM = alt(w.DEMONYMS)
ETHNIC = alt(w.ETHNIC)
MIGRANT = alt(w.MIGRANTS)
ORIGIN = [
    rf"(?P<x>(?:origines?|ascendance|descendance|racines|roots|ancestry|heritage|descent)\s+{DEMONYM})(?![\w-])",
    rf"(?P<x>(?:ne|nee|nes|nees|born|grandie?s?|grew\s+up|raised)\s+(?:au|aux|en|a|in|dans\s+(?:le|la|les))\s+(?:the\s+)?{COUNTRY})(?![\w-])",
    rf"(?P<x>(?:originaires?|vient|viennent|venue?s?|arrivee?s?|debarquee?s?|comes?|came|emigrated|immigrated|fled|a\s+fui|"
    rf"(?:is|are|was|were|'s)\s+(?:originally\s+)?|moved\s+here|parents\s+(?:are|were|sont)(?:\s+originaires)?)\s+"
    rf"(?:d[eu]\s+|d'|des\s+|de\s+la\s+|from\s+)(?:la\s+|le\s+|l'|les\s+|the\s+)?{COUNTRY})(?![\w-])",
    rf"(?P<x>(?:half|moitie|a\s+moitie|quarter|part)[\s-]+{DEMONYM}|{DEMONYM}\s+(?:par\s+(?:sa\s+mere|son\s+pere)|on\s+(?:his|her|their)\s+"
    rf"(?:mother|father)'s\s+side)|ethnically\s+[a-z-]+|irish\s+travellers?|gens\s+du\s+voyage)",
    rf"{_BE}\s+(?:[\w-]+\s+)?(?:un|une|a|an)?\s*(?P<x>{ETHNIC}|(?:{DEMONYM}\s+)?{MIGRANT}(?:\s+{DEMONYM}|\s+(?:from|de|du|d')\s*{COUNTRY})?)(?![\w-])",
]

OFFENCE = alt(w.OFFENCES)
CRIMINAL = [
    r"(?P<x>(?:fai[ts]|faisait|a\s+fait|purge\w*|passe\w*|sorti\w*|sort|libere\w*|retour\w*|envoye\w*|finir|fini)\s+"
    r"(?:de\s+la\s+|en\s+|la\s+|de\s+|du\s+)?(?:prison|taule|tole|zonzon|mitard|maison\s+d'arret|centre\s+penitentiaire))(?![\w-])",
    r"(?P<x>purge\w*\s+(?:une|sa)\s+peine(?:\s+de\s+[\w-]+\s+(?:ans|mois))?|(?:[\w-]+\s+)?(?:ans|mois|annees)\s+(?:de\s+prison\s+)?"
    r"(?:avec\s+sursis|ferme)|sursis\s+probatoire|travaux\s+d'interet\s+general|suspended\s+(?:sentence|jail\s+term)|community\s+(?:service|order)"
    r"|bracelet\s+electronique|electronic\s+tag|ankle\s+(?:tag|monitor)|fiche\w*\s+s(?![\w-])|fiche\w*\s+au\s+grand\s+banditisme)",
    rf"(?:arrete\w*|interpelle\w*|condamne\w*|poursuivie?s?|jugee?s?|inculpe\w*|accuse\w*|soupconne\w*|verbalise\w*|amende\w*|"
    rf"perdu\s+son\s+permis|fined|arrested|charged|convicted|jailed|cautioned|accused|suspected|prosecuted|nicked|busted|"
    rf"caught|done)\s+(?:[\w'-]+\s+){{0,4}}?(?:pour|for|of|de|d'|with)\s*(?:une?\s+|des\s+|du\s+|la\s+|le\s+|l'|a\s+|an\s+)?(?P<x>{OFFENCE})(?![\w-])",
    rf"(?P<x>{OFFENCE}\s+(?:charges?|conviction|offence|arrest|caution))(?![\w-])",
    r"(?P<x>(?:spent|did|served|done|doing)\s+(?:[\w'-]+\s+){0,3}?(?:in\s+)?(?:jail|prison|behind\s+bars|inside))(?![\w-])",
]

FRAMES: list[tuple[str, list[str]]] = [
    ("SENSITIVE_HEALTH", HEALTH), ("SENSITIVE_RELIGION", RELIGION), ("SENSITIVE_POLITICS", POLITICS),
    ("SENSITIVE_UNION", UNION), ("SENSITIVE_SEXUALITY", SEXUALITY), ("SENSITIVE_ORIGIN", ORIGIN),
    ("SENSITIVE_CRIMINAL", CRIMINAL),
]
