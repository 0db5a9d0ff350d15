"""Sensitive data about a person (GDPR article 9), in French and English: health, religion, political
opinions, union membership, sex life or orientation, ethnic origin, criminal convictions.

Article 9 concerns data that reveal these traits of an identifiable person, so an expression counts only
when the statement is about someone: an attribute after a copula whose subject is a person ("ma collègue
est enceinte", "he is a union member"), a verb or noun phrase that says what a person has, does or went
through ("souffre d'un cancer", "was convicted of theft", "vote RN", "porte le voile"), with a person
cue before it in the same clause: a personal pronoun, a word for a person ("collègue", "l'agent", "le
salarié", "my colleague", "son fils"), a courtesy title, a first name of the lexicon or a name found by
the other rules. The same words used impersonally ("la politique de santé publique", "the union
budget", "l'article 311-1 du code pénal", "l'origine du produit") have no such subject and give nothing.

The rules read the plain view of the text (:mod:`kit.rules.privacy.forms`), folded to lower case without
accents one character for one character, so every span maps back to the text as typed. Inflections are
written into the patterns (gender and number in French, verb forms in both languages). The span is the
sensitive expression ("arrêt maladie pour dépression", "délégué CGT"), never the whole sentence.

Besides the patterns below, :mod:`kit.rules.privacy.sensitive_frames` reads the domain lexicons of
:mod:`kit.rules.privacy.sensitive_words` (conditions, care workers, faiths and rites, parties, unions,
countries and demonyms, offences) through generic frames ("voit un" + any care worker, "de confession" +
any faith, "né en" + any country, "pour" + any offence), with the same person cue.

Cost: one pass of each precompiled pattern over the text, and for each match a look at a bounded window
before it (at most ``CUE_WINDOW`` characters): linear in the text's length.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

from kit.rules.privacy.identifiers import Candidate
from kit.rules.privacy.sensitive_frames import FRAMES, alt
from kit.rules.privacy.sensitive_words import PERSON_NOUNS

SENSITIVE_TYPES: tuple[str, ...] = (
    "SENSITIVE_HEALTH", "SENSITIVE_RELIGION", "SENSITIVE_POLITICS", "SENSITIVE_UNION",
    "SENSITIVE_SEXUALITY", "SENSITIVE_ORIGIN", "SENSITIVE_CRIMINAL",
)
PRIORITY = 45  # above PERSON and LOCATION: "vote Macron" is an opinion before it is a name
SCORE = 0.8
CUE_WINDOW = 90


def _fold_char(c: str) -> str:
    base = unicodedata.normalize("NFD", c)[0].lower()
    return base if len(base) == 1 else c


# Latin letters folded to lower case without accents, one character for one (offsets unchanged).
_FOLD = {i: _fold_char(chr(i)) for i in range(0x41, 0x250) if _fold_char(chr(i)) != chr(i)}
_FOLD.update({ord("’"): "'", ord("ʼ"): "'", ord("‘"): "'", ord("œ"): "œ", ord("Œ"): "œ"})


def fold(text: str) -> str:
    """Lower case, no accents, typographic apostrophes as ``'``; same length as ``text``."""
    return text.translate(_FOLD)


def _alt(words: str) -> str:
    """A regex alternation of the space-separated items (``_`` stands for a space in an item)."""
    return "(?:" + "|".join(w.replace("_", r"\s+") for w in sorted(words.split(), key=len, reverse=True)) + ")"


_E = r"(?:e|es|s)?"  # French feminine and plural endings
COPULA = _alt("""est sont etait etaient sera serait reste restait semble devenu devenue devenus a_ete ont_ete
    avait_ete est_devenu est_devenue se_dit se_declare se_revendique se_considere se_definit_comme
    is are was were be been being became becomes has_been have_been had_been
    describes_himself_as describes_herself_as describes_themselves_as calls_himself calls_herself
    identifies_as considers_himself considers_herself""")
_ADVERBS = _alt("""tres vraiment ouvertement profondement aussi toujours maintenant desormais plutot un une
    fervent fervente convaincu convaincue pratiquant pratiquante militant militante sympathisant sympathisante
    engage engagee notoirement
    very openly now still also a an devout practising practicing committed convinced staunch lifelong
    active well-known known self-declared deeply strict proud longtime registered terminally mentally
    seriously severely being""")
ADV = rf"(?:{_ADVERBS}\s+)*"
DET = r"(?:(?:un|une|le|la|les|des|du|de\s+la|de|sa|son|ses|a|an|the|his|her|their|some)\s+|[dl]')*"
ADJ = r"(?:(?:severe|grave|serious|chronic|chronique|petite?|lourde?|mild|major|minor|bad|terrible|rare|" \
      r"profonde?|important|importante|legere?|sevère)\s+)?"

# ---------------------------------------------------------------- lexicons (folded spellings)

HEALTH_ATTR = _alt(f"""malade{_E} enceinte{_E} diabetique{_E} epileptique{_E} asthmatique{_E} autiste{_E}
    seropositi(?:f|fs|ve|ves) depressi(?:f|fs|ve|ves) bipolaire{_E} schizophrene{_E} alcoolique{_E}
    toxicomane{_E} handicape{_E} invalide{_E} paraplegique{_E} tetraplegique{_E} aveugle{_E} sourde?s?
    malvoyante?s? malentendante?s? hospitalise{_E} obese{_E} anorexique{_E} boulimique{_E} dyslexique{_E}
    cancereu(?:x|se|ses) immunodeprime{_E} convalescente?s? en_situation_de_handicap en_invalidite
    en_mi-temps_therapeutique en_reeducation en_convalescence en_soins_palliatifs en_psychiatrie
    en_cure_de_desintoxication sous_traitement sous_chimio\\w* sous_dialyse sous_antidepresseurs
    sick ill pregnant diabetic epileptic autistic disabled depressed hiv[-\\s]positive bipolar schizophrenic
    alcoholic blind deaf hospitali[sz]ed anorexic dyslexic paraly[sz]ed obese immunocompromised
    in_hospital in_rehab in_remission in_a_wheelchair expecting_a_baby terminally_ill mentally_ill amputee{_E}
    en_longue_maladie amputees? en_cure""")
DISEASE = _alt("""cancer(?:\\s+d[ue]\\s+\\w+)? leucemie tumeur lymphome diabete depression(?:\\s+nerveuse)?
    burn-?out sclerose_en_plaques maladie_d[e']\\s?\\w+
    maladie_(?:grave|chronique|rare|orpheline|mentale|psychiatrique|genetique|auto-immune)
    alzheimer parkinson sida vih hepatite(?:\\s+\\w)? epilepsie autisme schizophrenie
    troubles?_(?:bipolaires?|psychiques?|psychiatriques?|anxieux|du_comportement_alimentaire|musculo-squelettiques)
    hernie(?:\\s+discale)? asthme infarctus avc crise_cardiaque fausse_couche anorexie boulimie alcoolisme
    addictions? handicap myopathie mucoviscidose endometriose fibromyalgie lupus covid(?:-19)? chimio(?:therapie)?
    radiotherapie dialyse antidepresseurs anxiolytiques neuroleptiques grossesse malaise crise_d'epilepsie
    (?:lung|breast|skin|prostate|bowel|brain|pancreatic|colon|ovarian|blood)\\s+cancer cancer leuka?emia
    tumou?r lymphoma diabetes depression anxiety panic_attacks epilepsy autism hiv aids dementia alzheimer's
    parkinson's multiple_sclerosis heart_attack stroke long_covid asthma bipolar_disorder schizophrenia ptsd
    burnout stress eating_disorder anorexia bulimia miscarriage chemo(?:therapy)? radiotherapy dialysis
    addiction alcoholism mental_illness mental_health_(?:problems|issues|condition) disability hepatitis(?:\\s+\\w)?
    crohn's(?:\\s+disease)? arthritis hernia (?:serious|chronic|rare|terminal)_(?:illness|disease|condition)
    antidepressants insulin heart_condition seizures? migraines surgery the_flu covid
    hypertension cholesterol arthrose arthrite sciatique lombalgie fracture entorse grippe bronchite pneumonie
    insuffisance_(?:cardiaque|renale|respiratoire) ulcere cirrhose paralysie hemiplegie surdite cecite obesite
    allergies? mal_de_dos migraines? prothese amputation fiv pma
    high_blood_pressure sciatica back_pain broken_(?:leg|arm|wrist|ankle|hip|back) pneumonia infection
    kidney_(?:failure|disease) heart_(?:disease|failure) liver_disease obesity allergy hearing_loss rehab ivf
    prosthesis amputation""")
HEALTH_HAVE = _alt("""a ont avait avaient aurait a_eu atteinte?s?_d[e'] souffre_d[e'] souffrait_d[e']
    souffrent_d[e'] soignee?s?_pour traitee?s?_pour diagnostiquee?s? a_fait fait suit prend prenait
    victime_d'un victime_d'une rechute_de traitement_contre traitement_pour revenue?_de revient_de
    sortie?_de
    has have had having diagnosed_with suffers_from suffering_from suffered_from treated_for
    recovering_from undergoing battling living_with lives_with off_work_with takes taking treatment_for
    came_back_from back_from returned_from""")
HEALTH_STATUS = r"(?:arret|conge)s?\s+(?:de\s+)?(?:maladie|maternite|longue\s+maladie|longue\s+duree|" \
    r"pathologique|de\s+travail)|arret\s+de\s+travail|(?:on|off)\s+(?:sick|medical|maternity|stress)\s+leave" \
    r"|off\s+sick|signed\s+off\s+sick|off\s+work\s+(?:with|due\s+to|because\s+of)\s+\w+|reconnue?\s+travailleu" \
    r"(?:r|se)\s+handicapee?|travailleu(?:r|se)\s+handicapee?|rqth|burn-?out"
HEALTH_TAIL = rf"(?:\s+(?:pour|for|with|due\s+to|de|d')\s*{DET}{ADJ}{DISEASE}\b)?"

RELIGION_ATTR = _alt(f"""musulman{_E} jui(?:f|fs|ve|ves) catholique{_E} protestant{_E} chretien(?:s|ne|nes)?
    bouddhiste{_E} hindou{_E} athee{_E} croyant{_E} pratiquant{_E} temoins?_de_jehovah evangelique{_E}
    orthodoxe{_E} sikhs? mormon{_E} agnostique{_E} salafiste{_E} tres_religieu(?:x|se|ses) pieu(?:x|se|ses)
    anglican{_E} adventiste{_E} converti{_E}
    muslims? jewish jews? catholics? protestants? christians? buddhists? hindus? atheists? agnostics?
    evangelical(?:\\s+christian)? mormons? jehovah's_witness(?:es)? religious orthodox_jew(?:ish)? quakers?
    anglicans? born-again(?:\\s+christian)? observant pasteur{_E} pretres? imams? rabbins? moines? religieu(?:x|se|ses)
    scientologues? priests? rabbis? pastors? nuns? monks? scientologists? wiccans?""")
_FAITHS = r"(?:l'islam|islam|judaisme|christianisme|catholicisme|bouddhisme|protestantisme|hindouisme|" \
    r"judaism|christianity|catholicism|buddhism|hinduism|sikhism)"
RELIGION_ACT = (
    rf"converti{_E}\s+(?:a|au)\s+{_FAITHS}|convert(?:s|ed)?\s+to\s+{_FAITHS}"
    r"|port(?:e|ent|ait)\s+(?:le|la|un|une)\s+(?:voile|foulard|kippa|turban|hijab|niqab|burqa|croix)"
    r"|wears?\s+(?:a|an|the)\s+(?:hijab|headscarf|turban|kippah|yarmulke|niqab|burqa|veil|cross)"
    r"|(?:fait|faisait|jeune\s+pendant|observe|respecte|celebre)\s+(?:le\s+)?(?:ramadan|shabbat|sabbat|careme|yom\s+kippour)"
    r"|(?:va|allait|se\s+rend)\s+(?:a\s+la\s+(?:messe|mosquee|synagogue|priere)|au\s+temple|a\s+l'eglise)"
    r"|prient?\s+(?:a\s+(?:midi|\d)|cinq\s+fois|chaque|tous\s+les|le\s+vendredi)"
    r"|(?:pour\s+des|for)\s+(?:raisons\s+religieuses|religious\s+reasons)"
    r"|fai(?:t|s|saient|sait)\s+(?:sa|la|ses|leur)\s+prieres?"
    r"|keeps\s+kosher|eats\s+(?:only\s+)?(?:halal|kosher)|mange\s+(?:halal|casher|kasher)"
    r"|fasts?\s+(?:during|for)\s+(?:ramadan|lent|navratri|yom\s+kippur)|observes\s+(?:ramadan|the\s+sabbath|shabbat|lent)"
    r"|(?:attends|goes\s+to)\s+(?:the\s+)?(?:mass|church|mosque|synagogue|temple)|prays\s+(?:five|every|at|daily)"
    r"|(?:sa|son|ses|his|her|their)\s+(?:religion|foi|croyances?|convictions\s+religieuses|faith|religious\s+beliefs)")

_PARTY = _alt("""rn fn lfi ps lr eelv pcf npa udi modem lrem rassemblement_national front_national
    la_france_insoumise france_insoumise parti_socialiste parti_communiste parti_animaliste les_republicains
    republicains les_verts verts europe_ecologie reconquete en_marche lutte_ouvriere debout_la_france
    zemmour melenchon marine_le_pen le_pen macron bardella l'extreme_gauche l'extreme_droite
    extreme_gauche extreme_droite la_gauche la_droite
    labour the_labour_party tory tories conservatives? lib_dems? liberal_democrats? green_party the_greens
    reform_uk snp ukip democrats? republicans? democratic_party republican_party gop maga brexit leave remain
    trump biden the_far_right the_far_left far[-\\s]right far[-\\s]left alt-right sinn_fein""")
POLITICS_ATTR = _alt("""communiste{_E} socialiste{_E} ecologiste{_E} anarchiste{_E} royaliste{_E} gaulliste{_E}
    trotskiste{_E} marxiste{_E} macroniste{_E} lepeniste{_E} insoumise?s? frontiste{_E} nationaliste{_E}
    melenchoniste{_E} zemmouriste{_E} libertaire{_E} d'extreme_(?:gauche|droite) de_(?:gauche|droite)
    socialists? communists? conservatives? tory republicans? democrats? anarchists? marxists? fascists?
    libertarians? far[-\\s]right far[-\\s]left left-wing right-wing liberal trump_supporter""".replace("{_E}", _E))
POLITICS_ACT = (
    rf"vot(?:e|es|ent|ait|aient|er|ed|ing)\s+(?:pour\s+|for\s+|a\s+)?(?:le\s+|la\s+|les\s+|the\s+)?{_PARTY}\b"
    rf"|a\s+vote\s+(?:pour\s+)?(?:le\s+|la\s+|les\s+)?{_PARTY}\b"
    rf"|(?:militant{_E}|adherent{_E}|membres?|encarte{_E}|sympathisant{_E}|electeur|electrice|electeurs|"
    rf"partisan{_E}|proche|milite|militait|a\s+adhere|soutient|candidat{_E}|conseill(?:er|ere)s?|depute{_E}|elu{_E})\s+(?:a|au|aux|du|de|des|chez|pour|en\s+faveur\s+de)?"
    rf"\s*(?:la\s+|le\s+|les\s+|l')?{_PARTY}\b"
    rf"|(?:members?|activists?|supporters?|voters?|campaigners?|canvassers?|councillors?|sympathi[sz]ers?)\s+"
    rf"(?:of|for)\s+(?:the\s+)?{_PARTY}\b"
    rf"|\b{_PARTY}\s+(?:party\s+)?(?:member|activist|supporter|voter|campaigner|sympathi[sz]er|councillor)s?"
    rf"|(?:campaign|canvass)(?:s|es|ed|ing)?\s+for\s+(?:the\s+)?{_PARTY}\b"
    r"|(?:stood|stands|ran|runs|standing|running)\s+(?:as|for)\s+(?:a\s+|an\s+|the\s+)?(?:\w+\s+)?"
    r"(?:candidate|councillor|mp|mayor|senator|congress(?:man|woman))\b|y\s+milite"
    r"|(?:se\s+presente|candidat{_E})\s+(?:aux|a\s+la)\s+(?:elections?|municipales|legislatives|presidentielle)"
    r"|(?:sa|son|ses|his|her|their)\s+(?:opinions?\s+politiques?|engagement\s+politique|appartenance\s+politique|"
    r"political\s+(?:views|opinions|beliefs|affiliation))")

_UNION_FR = _alt("cgt fo force_ouvriere cftc cfe-cgc cgc unsa cfdt sud(?:[-\\s]\\w+)? solidaires fsu snes snuipp "
                 "cnt sgen")
_UNION_EN = _alt("unite unison gmb teamsters neu nasuwt rcn pcs usdaw rmt aslef cwu ucu afl-cio seiu uaw bectu "
                 "fbu ufcw")
UNION = (
    rf"delegue{_E}\s+(?:syndica(?:l|le|ux|les)|du\s+personnel(?:\s+{_UNION_FR})?|{_UNION_FR}\b)"
    rf"|representant{_E}\s+(?:syndica(?:l|le|ux|les)|du\s+personnel|{_UNION_FR}\b)(?:\s+{_UNION_FR}\b)?"
    rf"|syndique{_E}(?:\s+(?:a|au|chez)\s+(?:la\s+|l')?{_UNION_FR}\b)?|syndicaliste{_E}|militant{_E}\s+syndica\w+"
    rf"|(?:adherent{_E}|membres?|elu{_E}|secretaire|tresorier|tresoriere|militant{_E}|encarte{_E})\s+"
    rf"(?:(?:a|au|de|du|chez)\s+)?(?:la\s+|l')?{_UNION_FR}\b"
    rf"|represent(?:e|ent|ait|s|ed)?\s+(?:la\s+|le\s+|l'|the\s+)?(?:{_UNION_FR}|{_UNION_EN})\b"
    r"|piquets?\s+de\s+greve|picket\s+lines?|union\s+dues|cotisations?\s+syndicales?"
    rf"|(?:sa\s+carte|adhere|adhesion|a\s+adhere)\s+(?:a|au|de|chez)\s+(?:la\s+|l')?{_UNION_FR}\b"
    rf"|section\s+syndicale(?:\s+{_UNION_FR}\b)?|heures\s+de\s+delegation|mandat\s+syndical"
    r"|(?:son|sa|ses)\s+(?:appartenance|engagement|activite|activites|mandat|adhesion)\s+syndica\w+"
    r"|(?:trade\s+|labou?r\s+)?union\s+(?:member|rep|representative|steward|delegate|official|officer|activist|"
    r"organi[sz]er|convenor|leader)s?|shop\s+stewards?|unioni[sz]ed|union\s+card|union\s+membership"
    rf"|(?:members?|reps?|representatives?|stewards?|delegates?|officials?|activists?)\s+(?:of|for)\s+(?:the\s+)?"
    rf"(?:[\w']+\s+){{0,2}}?(?:union|{_UNION_EN})\b"
    rf"|\b{_UNION_EN}\s+(?:member|rep|representative|steward|delegate|official|activist)s?"
    rf"|(?:joined|joins|join|belongs?\s+to|belonged\s+to)\s+(?:the\s+|a\s+)?(?:[\w']+\s+){{0,2}}?(?:union|{_UNION_EN})\b")

SEXUALITY_ATTR = _alt("""homosexuel(?:s|le|les)? gays? lesbiennes? bisexuel(?:s|le|les)?
    heterosexuel(?:s|le|les)? transgenres? trans pansexuel(?:s|le|les)? asexuel(?:s|le|les)? queer
    non[-\\s]binaires? intersexes? en_couple_avec_(?:un_homme|une_femme)
    gay lesbians? bisexual homosexual heterosexual transgender pansexual asexual non[-\\s]binary intersex homos?""")
SEXUALITY_ACT = (
    r"(?:fait|fais|faire|a\s+fait)\s+son\s+coming[-\s]out|coming[-\s]out|came\s+out(?:\s+as\s+\w+)?"
    r"|(?:entretient|a|avait|aurait|vit)\s+une\s+(?:liaison|relation\s+(?:extraconjugale|adultere|sexuelle)|aventure)"
    r"|tromp(?:e|ait|e|er)\s+(?:sa|son)\s+(?:femme|mari|epouse|epoux|compagne|compagnon|conjointe?)"
    r"|(?:sa|son|ses|his|her|their)\s+(?:orientation\s+sexuelle|vie\s+sexuelle|vie\s+intime|identite\s+de\s+genre|"
    r"homosexualite|bisexualite|sexual\s+orientation|sex\s+life|sexuality|gender\s+identity)"
    r"|(?:having|had|has|have)\s+an\s+affair|cheat(?:s|ed|ing)?\s+on\s+(?:him|her|them|his\s+\w+|her\s+\w+)"
    r"|same-sex\s+(?:relationship|partner|marriage|couple)|(?:is|are|was|were)\s+dating|sort\s+avec"
    r"|(?:couche|sleeps?|slept|sleeping)\s+(?:avec|with)|transition(?:ed|ne|nee)\b"
    r"|(?:commence|entame|began|started)\s+(?:sa|son|his|her|their)\s+transition(?!\s+(?:numerique|energetique|ecologique|digitale|digital|to))")

ORIGIN_ATTR = _alt(f"""noir{_E} metis(?:se|ses)? arabes? roms? asiatiques? maghrebin{_E} africain{_E} gitan{_E}
    tzigane{_E} kabyles? berberes? beurs? racise{_E} black asian hispanic latino latina arab roma gypsy
    mixed[-\\s]race biracial (?:\\w+\\s+)?immigrants? (?:\\w+\\s+)?(?:refugees?|migrants?)
    (?:\\w+\\s+)?(?:immigre{_E}|refugie{_E}|migrant{_E}) sans-papiers peul{_E} kurde{_E} tamoul{_E} touaregs?
    ouighour{_E} manouche{_E} tsigane{_E} yeniches? antillais{_E} afro-\\w+ kurdish tamil uyghur""")
ORIGIN = (
    r"d'origines?\s+(?!controlee|protegee|animale|vegetale|inconnue|humaine|geographique|naturelle|minerale|"
    r"renouvelable|agricole|industrielle|professionnelle)[a-z-]+"
    r"|issue?s?\s+de\s+l'immigration(?:\s+\w+)?|origine\s+ethnique"
    r"|(?:sa|son|ses|his|her|their)\s+(?:origines?|couleur\s+de\s+peau|ethnie|appartenance\s+ethnique|"
    r"ethnicity|ethnic\s+origin|race|skin\s+colou?r)"
    r"|of\s+(?:[a-z-]+\s+){1,2}(?:origin|descent|heritage|background|ancestry|extraction|parentage)"
    r"|(?:femme|homme|fille|garcon|personne|jeune)s?\s+(?:noire?s?|arabes?|asiatiques?|maghrebine?s?|metisse?s?|roms?)"
    r"|(?:black|asian|arab|hispanic|latino|latina)\s+(?:woman|man|girl|boy|guy|person|lady|people|women|men)"
    r"|ethnically\s+[a-z-]+|people\s+of\s+colou?r|person\s+of\s+colou?r")

CRIMINAL = (
    rf"(?:condamne{_E}|mise?s?\s+en\s+examen|incarcere{_E}|emprisonne{_E}|interpelle{_E}|ecroue{_E}|"
    rf"place{_E}\s+en\s+(?:garde\s+a\s+vue|detention(?:\s+provisoire)?)|inculpe{_E}|reconnue?s?\s+coupables?|"
    rf"poursuivie?s?\s+pour|juge{_E}\s+pour|fiche{_E}\s+s)"
    r"(?:\s+(?:pour|a|de)\s+[\w'-]+(?:\s+[\w'-]+){0,3})?"
    r"|(?:a|avait)\s+un\s+casier(?:\s+judiciaire)?|son\s+casier\s+judiciaire"
    r"|(?:fait|purge|passe|a\s+fait)\s+(?:\w+\s+)?(?:ans|mois|annees|jours)\s+(?:de\s+prison|ferme|de\s+detention)"
    r"|(?:sort|sorti|sortie|libere|liberee)\s+de\s+prison|en\s+prison|en\s+detention(?:\s+provisoire)?"
    r"|sous\s+(?:bracelet\s+electronique|controle\s+judiciaire)|en\s+garde\s+a\s+vue|en\s+liberte\s+conditionnelle"
    r"|a\s+commis\s+(?:un|une|des)\s+(?:vols?|agressions?|crimes?|delits?|meurtres?|viols?|fraudes?|escroqueries?|infractions?|homicides?)"
    r"|ecope{_E}\s+d[e']\s*(?:une?\s+)?(?:amende|peine|prison|\w+\s+(?:ans|mois)\s+de\s+prison)"
    r"(?:\s+(?:pour|de)\s+[\w'-]+(?:\s+[\w'-]+){0,3})?"
    r"|(?:did|doing|done|served)\s+time|awaiting\s+trial|(?:on|stood|stands)\s+trial|en\s+attente\s+de\s+(?:son\s+)?proces"
    r"|(?:convicted|arrested|charged\s+with(?!\s+\w+ing\b)|jailed|imprisoned|sentenced|incarcerated|found\s+guilty|cautioned|"
    r"remanded|prosecuted|indicted|pleaded\s+guilty)(?:\s+(?:of|for|with|to)\s+[\w'-]+(?:\s+[\w'-]+){0,2})?"
    r"|(?:previous|prior|criminal|spent|fraud|drugs?|theft|assault|a|his|her|their)\s+convictions?|criminal\s+record|served\s+(?:\w+\s+){0,3}?(?:in\s+prison|in\s+jail|behind\s+bars|sentence)"
    r"|(?:in|out\s+of|released\s+from)\s+(?:prison|jail)|behind\s+bars|on\s+parole|on\s+remand|sex\s+offender"
    r"|ex-con(?:vict)?")

PERSON_WORDS = _alt(f"""il elle ils elles lui je j' moi collegues? agent{_E} salarie{_E} employe{_E} stagiaires?
    candidat{_E} responsables? chef(?:fe)?s? directeur directrice directeurs secretaires? assistant{_E}
    technicien(?:s|ne|nes)? comptables? chauffeurs? livreurs? magasiniers? gardien(?:s|ne|nes)? caissiere?s?
    infirmiere?s? receptionnistes? voisin{_E} fils filles? femmes? mari epouse epoux pere mere freres? soeurs? sœurs?
    parents enfants? amie?s? patient{_E} eleves? etudiant{_E} adjoint{_E} collaborat(?:eur|rice)s? recrues?
    usagers? client{_E} homme cousin{_E} oncle tante neveu niece conjoint{_E} compagnon compagne copain copine
    superieur{_E} manager dirigeant{_E} gerant{_E} ouvriere?s? fonctionnaires? apprenti{_E} interimaires?
    remplacant{_E} enseignant{_E} benevoles? locataires? beneficiaires? monsieur madame mademoiselle mme mlle
    he she they him i i'm i've me colleagues? employees? staff_member worker intern trainee candidate applicant
    manager boss supervisor director secretary assistant technician accountant driver cashier nurse receptionist
    caretaker neighbou?r son daughter wife husband partner father mother brother sister child kid friend
    student pupil deputy new_hire hire recruit tenant client customer cousin uncle aunt teammate co-?worker
    contractor volunteer man woman guy lady mr mrs ms miss dr famille family grandparents grands-parents
    grand-pere grand-mere grandfather grandmother binome equipier{_E} partenaire""")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w'-])(?:{pattern})(?![\w-])")


_ATTR = [(kind, re.compile(rf"(?:(?<![\w'-]){COPULA}|(?<=\w)'(?:s|re))\s+{ADV}(?P<x>{terms})(?![\w-])"))
         for kind, terms in (("SENSITIVE_HEALTH", rf"{HEALTH_ATTR}{HEALTH_TAIL}"),
                             ("SENSITIVE_RELIGION", RELIGION_ATTR), ("SENSITIVE_POLITICS", POLITICS_ATTR),
                             ("SENSITIVE_SEXUALITY", SEXUALITY_ATTR), ("SENSITIVE_ORIGIN", ORIGIN_ATTR))]
_PHRASES = [(kind, _compile(p)) for kind, p in (
    ("SENSITIVE_HEALTH", rf"{HEALTH_HAVE}(?:\s+|(?<='))\s*{DET}{ADJ}(?P<x>{DISEASE}|{HEALTH_ATTR})"),
    ("SENSITIVE_HEALTH", rf"(?P<x>(?:{HEALTH_STATUS}){HEALTH_TAIL})"),
    ("SENSITIVE_HEALTH", r"(?P<x>operee?s?\s+(?:du|de\s+la|de\s+l'|des|d')\s*[\w-]+)"),
    ("SENSITIVE_HEALTH", r"(?:perdu|lost)\s+(?:le|son|leur|the|a|her|their)\s+(?:bebe|baby)"
                         r"|lost\s+(?:a|an|his|her|their)\s+(?:leg|arm|hand|foot|eye)"
                         r"|(?:perdu|ampute)\s+d'une?\s+(?:jambe|bras|main|pied|oeil|œil)"),
    ("SENSITIVE_RELIGION", RELIGION_ACT), ("SENSITIVE_POLITICS", POLITICS_ACT), ("SENSITIVE_UNION", UNION),
    ("SENSITIVE_SEXUALITY", SEXUALITY_ACT), ("SENSITIVE_ORIGIN", ORIGIN), ("SENSITIVE_CRIMINAL", CRIMINAL))]
# The frames built on the domain lexicons (:mod:`kit.rules.privacy.sensitive_frames`): one alternation per
# category, always with a person in the clause (their possessive alone is not enough: "sa grippe" may be
# a dog's).
# A frame may start after an elided article or preposition ("d'ascendance", "l'hôpital").
_FRAMES = [(kind, re.compile(r"(?:(?<![\w-])|(?='s\s))(?:" + "|".join(
    "(?:" + p.replace("(?P<x>", f"(?P<x{i}>") + ")" for i, p in enumerate(patterns)) + ")"))
           for kind, patterns in FRAMES]
# A noun with the ending of a word for a person (trade, origin, role) after a determiner: "le cariste",
# "la standardiste", "our receptionist", "the contractor".
_ROLE = (r"(?:(?:le|la|les|un|une|notre|nos|mon|ma|mes|son|sa|ses|ce|cette|ces|leur|votre|the|our|my|his|her|"
         r"their|a|an|this|that|your)\s+|l')(?:(?:nouvel(?:le)?|nouveau|ancien(?:ne)?|jeune|new|former|young)\s+)?"
         r"[a-z]+(?<!m)(?:eur|euse|rice|iste|ien|ienne|ier|iere|ant|ante|aire|ent|ente|er|or|ist|ian|ee)s?(?![\w-])")
_PERSON_CUE = re.compile(rf"(?<![\w-]){PERSON_WORDS}(?![\w-])|(?<![\w-]){_ROLE}|(?<![\w'-]){alt(PERSON_NOUNS)}(?![\w-])"
                         r"|(?<![\w])(?:m|mme|mr|mrs|ms|dr)\.?\s|\bj'")
_CLAUSE_END = re.compile(r"(?<!\bm)(?<!\bmr)(?<!\bdr)(?<!\bms)(?<!\bmrs)(?<!\bmme)[.!?;:](?:\s|$)|\n")
_NAME = re.compile(r"(?<![\w'-])[A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-ZÀ-Ý][a-zà-ÿ]+)?")
_POSSESSIVE = re.compile(r"(?:sa|son|ses|his|her|their)\s")


def _clause_start(folded: str, pos: int) -> int:
    """Start of the clause holding ``pos``: after the last sentence end, colon or line break within the
    window before it."""
    start = max(0, pos - CUE_WINDOW)
    last = start
    for m in _CLAUSE_END.finditer(folded, start, pos):
        last = m.end()
    return last


def _about_a_person(text: str, folded: str, start: int, person_ends: list[int],
                    first_names: frozenset[str]) -> bool:
    """True if a person is named or referred to in the clause before ``start``."""
    begin = _clause_start(folded, start)
    if _PERSON_CUE.search(folded, begin, start):
        return True
    i = bisect.bisect_right(person_ends, begin)
    if i < len(person_ends) and person_ends[i] <= start:
        return True  # a name found by the other rules
    return any(m.group().lower().split("-")[0] in first_names for m in _NAME.finditer(text, begin, start))


def _span(m: re.Match[str]) -> tuple[int, int]:
    """The span of the sensitive expression: the group ``x`` that took part in the match, else the match."""
    for name, (start, end) in zip(m.re.groupindex, (m.span(n) for n in m.re.groupindex), strict=True):
        if name.startswith("x") and start >= 0:
            return start, end
    return m.span()


def find_sensitive(text: str, persons: list[Candidate] | None = None,
                   first_names: frozenset[str] = frozenset()) -> list[Candidate]:
    """SENSITIVE_* candidates in a plain text (see the module's docstring); ``persons``: the PERSON
    candidates of the same text, taken as cues; ``first_names``: the first-name lexicon."""
    folded = fold(text)
    person_ends = sorted(c.end for c in persons or [] if c.type == "PERSON")
    out: list[Candidate] = []
    for kind, pattern, framed in [(k, p, False) for k, p in _ATTR + _PHRASES] + [(k, p, True) for k, p in _FRAMES]:
        for m in pattern.finditer(folded):
            start, end = _span(m)
            if end <= start:
                continue
            personal = (not framed and _POSSESSIVE.match(folded, m.start()) is not None  # "sa religion"
                        and "origin" not in folded[m.start():m.end()])  # "son origine": a product has one too
            if personal or _about_a_person(text, folded, m.start(), person_ends, first_names):
                out.append(Candidate(kind, start, end, SCORE, PRIORITY))
    return out


__all__ = ["SENSITIVE_TYPES", "find_sensitive", "fold"]
