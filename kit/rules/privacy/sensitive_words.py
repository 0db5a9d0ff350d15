"""Lexicons of the sensitive-data rules (:mod:`kit.rules.privacy.sensitive`), built from each domain rather
than from example sentences: conditions, care and treatments; faiths, practices and rites; parties and
movements; unions; countries and demonyms; offences. Spellings are folded (lower case, no accents);
inflections are generated here (French gender and number, verb forms in both languages), once, at import.
"""

from __future__ import annotations


def _words(block: str) -> list[str]:
    return [w.replace("_", " ") for w in block.split()]


def fr_forms(word: str) -> list[str]:
    """A French adjective or noun with its feminine and plural forms (masculine given)."""
    for masc, fem in (("eux", "euse"), ("if", "ive"), ("ien", "ienne"), ("el", "elle"), ("en", "enne"),
                      ("on", "onne"), ("er", "ere"), ("eur", "euse"), ("c", "que")):
        if word.endswith(masc):
            stem = word[: -len(masc)]
            plural = word if word.endswith(("x", "s")) else word + "s"
            return [word, plural, stem + fem, stem + fem + "s"]
    if word.endswith("e"):
        return [word, word + "s"]
    if word.endswith(("s", "x")):
        return [word, word + "e", word + "es"]
    return [word, word + "s", word + "e", word + "es"]


def en_forms(word: str) -> list[str]:
    """An English noun or adjective with its plural."""
    return [word, word + ("es" if word.endswith(("s", "sh", "ch")) else "s")]


# ---------------------------------------------------------------- health
CONDITIONS = sorted(set(_words("""
    cancer cancers tumeur tumeurs leucemie lymphome melanome metastases diabete hypertension cholesterol asthme
    bronchite pneumonie grippe covid covid-19 covid_long tuberculose hepatite cirrhose sida vih mononucleose
    depression burn-out burnout anxiete angoisses crises_d'angoisse phobie phobies toc bipolarite schizophrenie
    psychose paranoia anorexie boulimie addiction addictions alcoolisme toxicomanie dependance sevrage autisme
    tdah hyperactivite dyslexie dyspraxie epilepsie migraine migraines alzheimer parkinson sclerose_en_plaques
    myopathie mucoviscidose endometriose fibromyalgie lupus polyarthrite arthrose arthrite rhumatisme sciatique
    lombalgie hernie hernie_discale tendinite fracture entorse luxation avc infarctus arythmie insuffisance
    cardiaque ulcere gastrite colite crohn maladie_de_crohn allergie allergies eczema psoriasis acouphenes
    surdite cecite glaucome cataracte handicap paralysie hemiplegie amputation prothese obesite apnee
    apnee_du_sommeil insomnie thyroide hypothyroidie anemie hemophilie drepanocytose infection septicemie
    operation intervention chirurgie greffe chimio chimiotherapie radiotherapie dialyse reeducation kine
    kinesitherapie psychotherapie therapie traitement hospitalisation convalescence rechute grossesse
    accouchement fausse_couche ivg fiv pma maternite
    cancer tumor tumour leukemia leukaemia lymphoma melanoma diabetes hypertension asthma bronchitis pneumonia
    flu covid long_covid tuberculosis hepatitis cirrhosis hiv aids depression burnout anxiety panic_attacks
    phobia ocd bipolar_disorder schizophrenia psychosis ptsd anorexia bulimia eating_disorder addiction
    alcoholism drug_addiction autism adhd dyslexia epilepsy seizures migraine migraines dementia alzheimer's
    parkinson's multiple_sclerosis ms cystic_fibrosis endometriosis fibromyalgia lupus arthritis sciatica
    back_pain slipped_disc hernia fracture stroke heart_attack heart_condition heart_disease arrhythmia ulcer
    crohn's colitis ibs allergy allergies eczema psoriasis tinnitus deafness hearing_loss blindness glaucoma
    cataracts disability paralysis amputation prosthesis obesity sleep_apnea insomnia thyroid anaemia anemia
    infection sepsis surgery operation transplant chemo chemotherapy radiotherapy dialysis rehab physio
    physiotherapy therapy counselling treatment medication antidepressants insulin pregnancy miscarriage
    abortion ivf mental_health mental_illness illness sickness injury concussion breakdown nervous_breakdown""")))
# Words that name a condition only in a medical context: not after a bare "has" or a possessive.
WEAK_CONDITIONS = frozenset(_words("""operation intervention traitement therapie therapy treatment counselling
    cure reeducation rehab physio kine possession confession mass maternite""") + ["mental health"])
STRONG_CONDITIONS = sorted(set(CONDITIONS) - WEAK_CONDITIONS)
BODY_PARTS = sorted(set(_words("""genou genoux dos hanche epaule coeur cheville poignet main pied colonne
    colonne_vertebrale oeil yeux appendicite vesicule thyroide sein poumon rein foie estomac cerveau prostate
    menisque ligaments cataracte
    knee knees back hip shoulder heart ankle wrist hand foot spine eye eyes appendix gallbladder thyroid
    breast lung kidney liver stomach brain prostate cataracts""")))
CARE_WORKERS = sorted(set(_words("""
    psy psys psychiatre psychiatres psychologue psychologues psychanalyste therapeute oncologue oncologues
    cardiologue neurologue rhumatologue pneumologue endocrinologue gynecologue gyneco urologue dermatologue
    nephrologue gastro-enterologue kine kines kinesitherapeute orthophoniste addictologue chirurgien
    specialiste medecin_du_travail sage-femme diabetologue
    therapist therapists psychiatrist psychologist counsellor counselor oncologist cardiologist neurologist
    rheumatologist gynaecologist gynecologist urologist dermatologist physio physiotherapist specialist
    surgeon consultant midwife shrink""")))
PLACES_OF_CARE = sorted(set(_words("""
    hopital clinique urgences psychiatrie service_de_psychiatrie centre_de_desintoxication cure
    maison_de_repos reanimation soins_intensifs soins_palliatifs
    hospital clinic rehab a&e icu intensive_care psychiatric_ward detox hospice""")))
SUBSTANCES = sorted(set(_words("""
    alcool drogue drogues cannabis cocaine heroine medicaments cachets antidepresseurs anxiolytiques
    somniferes opiaces alcohol drink drinking drugs cocaine heroin opioids painkillers pills gambling""")))

# ---------------------------------------------------------------- religion
_FAITHS_FR = """musulman juif catholique protestant chretien bouddhiste hindou athee agnostique evangelique
    orthodoxe sikh mormon anglican adventiste baptiste pentecotiste methodiste lutherien calviniste copte
    maronite chiite sunnite salafiste soufi jain taoiste shintoiste bahai animiste scientologue israelite
    temoin_de_jehovah croyant pratiquant"""
FAITHS = sorted({f for w in _words(_FAITHS_FR) for f in fr_forms(w)} | set(_words("""
    juive juives muslim jewish jew catholic protestant christian buddhist hindu atheist agnostic evangelical
    orthodox sikh mormon anglican adventist baptist pentecostal methodist lutheran calvinist coptic shia shiite
    sunni salafi sufi jain taoist shinto bahai pagan wiccan scientologist quaker presbyterian
    jehovah's_witness born-again muslims jews catholics protestants christians buddhists hindus atheists
    agnostics evangelicals mormons anglicans baptists quakers""")))
RELIGIONS = sorted(set(_words("""
    islam l'islam judaisme christianisme catholicisme protestantisme bouddhisme hindouisme sikhisme
    orthodoxie evangelisme atheisme
    islam judaism christianity catholicism protestantism buddhism hinduism sikhism the_catholic_church
    the_church""")))
OBSERVANCES = sorted(set(_words("""
    ramadan careme shabbat sabbat kippour yom_kippour paque paques aid l'aid pessah hanoucca diwali
    vendredi_saint ashoura
    ramadan lent shabbat sabbath yom_kippur passover eid diwali hanukkah""")))
RITES = sorted(set(_words("""
    bar-mitsva bat-mitsva bar_mitzvah bat_mitzvah communion premiere_communion confirmation bapteme
    circoncision pelerinage hajj omra profession_de_foi priere prieres messe catechisme
    baptism christening first_communion pilgrimage mass prayers prayer confession""")))
WORSHIP = sorted(set(_words("""
    mosquee synagogue eglise temple paroisse chapelle cathedrale pagode gurdwara salle_du_royaume
    mosque synagogue church temple parish chapel cathedral gurdwara kingdom_hall""")))
RELIGIOUS_GARMENTS = sorted(set(_words("""
    voile foulard hijab niqab burqa kippa turban croix soutane
    hijab headscarf niqab burqa kippah yarmulke turban veil cross crucifix""")))

# ---------------------------------------------------------------- politics
PARTIES = sorted(set(_words("""
    rn fn lfi ps lr eelv pcf npa udi modem lrem renaissance horizons reconquete rassemblement_national
    front_national la_france_insoumise france_insoumise insoumis parti_socialiste parti_communiste
    parti_animaliste les_republicains republicains les_verts verts europe_ecologie
    europe_ecologie_les_verts les_ecologistes en_marche lutte_ouvriere debout_la_france nupes nfp
    nouveau_front_populaire generation_s place_publique zemmour melenchon le_pen marine_le_pen macron bardella
    l'extreme_gauche l'extreme_droite extreme_gauche extreme_droite la_gauche la_droite
    labour the_labour_party labour_party tory tories conservatives the_conservative_party conservative_party
    lib_dems liberal_democrats green_party the_greens greens reform_uk snp plaid_cymru ukip dup sinn_fein
    democrats republicans democratic_party republican_party gop maga trump biden harris obama
    extinction_rebellion just_stop_oil antifa black_lives_matter the_far_right the_far_left""")))
POLITICAL_ADJ = sorted({f for w in _words("""communiste socialiste ecologiste anarchiste royaliste
    gaulliste trotskiste marxiste macroniste lepeniste frontiste nationaliste melenchoniste zemmouriste
    libertaire gaucho facho reac identitaire souverainiste insoumis militant_politique""") for f in fr_forms(w)}
    | set(_words("""socialist communist conservative tory republican democrat anarchist marxist fascist
    libertarian liberal progressive left-wing right-wing far-right far-left leftist leftie lefty
    trump_supporter""")))

# ---------------------------------------------------------------- unions
# Union names that are also ordinary words ("le sud", "unite", "solidaires") are only taken right after
# a union word, never after other words in between.
COMMON_WORD_UNIONS = frozenset(["sud", "unite", "solidaires", "equity"])
UNIONS = sorted(set(_words("""
    cgt fo force_ouvriere cftc cfe-cgc cgc unsa cfdt sud sud_rail sud_ptt sud_sante sud_education
    solidaires fsu snes snuipp cnt sgen snu unef
    unite unison gmb teamsters neu nasuwt rcn pcs usdaw rmt aslef cwu ucu afl-cio seiu uaw bectu fbu ufcw
    bma equity nipsa""")))

# ---------------------------------------------------------------- origin
COUNTRIES = sorted(set(_words("""
    afghanistan afrique_du_sud albanie algerie allemagne angola arabie_saoudite argentine armenie australie
    autriche azerbaidjan bangladesh belgique benin bielorussie birmanie bolivie bosnie bresil bulgarie
    burkina_faso burundi cambodge cameroun canada cap-vert centrafrique chili chine chypre colombie comores
    congo coree croatie cuba danemark djibouti egypte equateur erythree espagne estonie ethiopie finlande
    gabon gambie georgie ghana grece guatemala guinee guyane haiti honduras hongrie inde indonesie irak iran
    irlande islande israel italie jamaique japon jordanie kazakhstan kenya kosovo koweit laos lettonie liban
    liberia libye lituanie luxembourg macedoine madagascar malaisie mali maroc maurice mauritanie mexique
    moldavie mongolie montenegro mozambique nepal nicaragua niger nigeria norvege pakistan palestine panama
    paraguay pays-bas perou philippines pologne portugal qatar roumanie russie rwanda salvador senegal serbie
    sierra_leone singapour slovaquie slovenie somalie soudan sri_lanka suede suisse syrie tadjikistan taiwan
    tanzanie tchad tchequie thailande togo tunisie turquie ukraine uruguay venezuela vietnam yemen zambie
    zimbabwe antilles martinique guadeloupe reunion mayotte kabylie
    afghanistan south_africa albania algeria germany angola saudi_arabia argentina armenia australia austria
    azerbaijan bangladesh belgium benin belarus burma myanmar bolivia bosnia brazil bulgaria burundi cambodia
    cameroon canada chile china cyprus colombia congo korea croatia cuba denmark djibouti egypt ecuador
    eritrea spain estonia ethiopia finland gabon gambia georgia ghana greece guatemala guinea haiti honduras
    hungary india indonesia iraq iran ireland iceland israel italy jamaica japan jordan kazakhstan kenya
    kosovo kuwait laos latvia lebanon liberia libya lithuania macedonia madagascar malaysia mali morocco
    mauritius mauritania mexico moldova mongolia montenegro mozambique nepal nicaragua niger nigeria norway
    pakistan palestine panama paraguay peru the_philippines poland portugal qatar romania russia rwanda
    el_salvador senegal serbia sierra_leone singapore slovakia slovenia somalia sudan sri_lanka sweden
    switzerland syria taiwan tanzania chad thailand togo tunisia turkey ukraine uruguay venezuela vietnam
    yemen zambia zimbabwe the_caribbean puerto_rico bosnia_and_herzegovina trinidad barbados uganda tibet
    kurdistan chechnya""")))
_DEMONYMS_FR = """afghan sud-africain albanais algerien allemand angolais saoudien argentin armenien
    australien autrichien azeri bangladais belge beninois bielorusse birman bolivien bosniaque bresilien
    bulgare burkinabe burundais cambodgien camerounais canadien cap-verdien centrafricain chilien chinois
    chypriote colombien comorien congolais coreen croate cubain danois djiboutien egyptien equatorien
    erythreen espagnol estonien ethiopien finlandais gabonais gambien georgien ghaneen grec guatemalteque
    guineen guyanais haitien hondurien hongrois indien indonesien irakien iranien irlandais islandais
    israelien italien ivoirien jamaicain japonais jordanien kazakh kenyan kosovar koweitien laotien letton
    libanais liberien libyen lituanien malgache malaisien malien marocain mauricien mauritanien mexicain
    moldave mongol montenegrin mozambicain nepalais nicaraguayen nigerien nigerian norvegien pakistanais
    palestinien panameen paraguayen peruvien philippin polonais portugais qatari roumain russe rwandais
    salvadorien senegalais serbe sierra-leonais singapourien slovaque slovene somalien soudanais srilankais
    suedois suisse syrien tadjik taiwanais tanzanien tchadien tcheque thailandais togolais tunisien turc
    ukrainien uruguayen venezuelien vietnamien yemenite zambien zimbabween antillais martiniquais
    guadeloupeen reunionnais mahorais kabyle berbere kurde tamoul ouighour tchetchene armenien arabe africain
    asiatique maghrebin europeen latino sud-americain nord-africain subsaharien"""
DEMONYMS = sorted({f for w in _words(_DEMONYMS_FR) for f in fr_forms(w)} | {"grecque", "grecques", "turque",
    "turques"} | set(_words("""
    afghan south_african albanian algerian german angolan saudi argentinian argentine armenian australian
    austrian azerbaijani bangladeshi belgian beninese belarusian burmese bolivian bosnian brazilian bulgarian
    burundian cambodian cameroonian canadian chilean chinese cypriot colombian congolese korean croatian
    cuban danish djiboutian egyptian ecuadorian eritrean spanish estonian ethiopian finnish gabonese gambian
    georgian ghanaian greek guatemalan guinean haitian honduran hungarian indian indonesian iraqi iranian
    irish icelandic israeli italian ivorian jamaican japanese jordanian kazakh kenyan kosovan kuwaiti laotian
    latvian lebanese liberian libyan lithuanian malagasy malaysian malian moroccan mauritian mauritanian
    mexican moldovan mongolian montenegrin mozambican nepalese nicaraguan nigerien nigerian norwegian
    pakistani palestinian panamanian paraguayan peruvian filipino polish portuguese qatari romanian russian
    rwandan salvadoran senegalese serbian sierra_leonean singaporean slovak slovenian somali sudanese
    sri_lankan swedish swiss syrian tajik taiwanese tanzanian chadian czech thai togolese tunisian turkish
    ukrainian uruguayan venezuelan vietnamese yemeni zambian zimbabwean caribbean puerto_rican kurdish tamil
    uyghur chechen berber arab african asian north_african south_asian east_asian latin_american hispanic
    latino latina european polish jewish romani roma""")))
ETHNIC = sorted({f for w in _words("""noir metis rom gitan tzigane tsigane manouche yeniche peul touareg
    racise beur rebeu renoi black""") for f in fr_forms(w)} | {"metisse", "metisses"} | set(_words("""
    black mixed-race mixed_race biracial romani roma gypsy traveller irish_traveller person_of_colour
    person_of_color""")))
MIGRANTS = sorted({f for w in _words("immigre refugie migrant exile demandeur_d'asile sans-papiers clandestin")
                   for f in fr_forms(w)} | set(_words("""
    immigrant immigrants refugee refugees migrant migrants asylum_seeker asylum_seekers illegal_immigrant
    undocumented""")))

# ---------------------------------------------------------------- criminal
OFFENCES = sorted(set(_words("""
    vol vols recel fraude escroquerie abus_de_confiance abus_de_biens_sociaux detournement corruption
    trafic trafic_de_stupefiants trafic_de_drogue stupefiants deal agression agressions violences
    violences_conjugales coups_et_blessures viol harcelement meurtre homicide tentative_de_meurtre
    cambriolage vandalisme degradations outrage rebellion conduite_en_etat_d'ivresse alcool_au_volant
    exces_de_vitesse delit_de_fuite usage_de_stupefiants detention_de_stupefiants port_d'arme terrorisme
    pedopornographie exhibitionnisme blanchiment faux_et_usage_de_faux contrefacon extorsion racket
    theft burglary robbery fraud embezzlement shoplifting assault battery drink_driving drunk_driving
    dangerous_driving drug_dealing drug_possession possession possession_of_cannabis manslaughter murder
    rape harassment stalking arson vandalism criminal_damage money_laundering bribery forgery domestic_violence
    domestic_abuse affray gbh abh indecent_exposure kidnapping blackmail extortion terrorism""")))

# ---------------------------------------------------------------- people
# Words for a person whose ending does not already say so (the rules read "-eur", "-iste", "-ier", "-ant"...
# as a person's trade): trades, roles and familiar words, French and English.
PERSON_NOUNS = sorted({f for w in _words("""peintre vigile hotesse macon medecin avocat pilote architecte
    cadre commercial dentiste ministre maire juge notaire coiffeur serveur prof professeur maitresse instit
    nounou aide-soignant soignant ado gamin mec meuf nana gars bonhomme quelqu'un individu
    camarade pote copain binome tuteur referent coach proprio patron patronne boss chef""") for f in fr_forms(w)}
    | set(_words("""cook chef clerk guard cleaner lawyer pilot architect nanny mate bloke lad lads someone
    somebody person dude guy guys girl boy colleague staffer analyst engineer designer welder
    plumber painter electrician carpenter mechanic porter janitor officer""")))
