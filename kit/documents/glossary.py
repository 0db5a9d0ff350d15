"""A French–English glossary of public-administration vocabulary, for cross-language keyword search.

An English-centred embedding model hardly links a French document to an English question (or the
reverse), and stems do not cross languages except for cognates. Words of a question found here also
search for their translation on the keyword side. The glossary covers the common vocabulary of
human resources, leave, pay, telework, procurement, finance, travel, IT and security, personal
data, training, health and safety, buildings and governance; it is not a dictionary. Each line is
``french | english``, alternatives separated by ``;``. Extend it with a file of the same format at
``$KIT_HOME/glossary.txt``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from kit.documents.text import stems, words

GLOSSARY = """
agent; fonctionnaire; salarié; employé | staff; employee; civil servant; official
agent contractuel; contractuel | contract staff; contractual employee
personnel | staff; personnel
responsable hiérarchique; supérieur hiérarchique; chef de service; manager | line manager; manager; supervisor
direction | directorate; management
directeur | director
ressources humaines; RH | human resources; HR
recrutement | recruitment; hiring
candidat | candidate; applicant
entretien | interview
entretien professionnel | appraisal interview; performance review
période d'essai; stage | probation; probationary period; trial period
titularisation | confirmation in post; tenure
mutation | transfer
promotion | promotion
démission | resignation
retraite | retirement; pension
contrat | contract
temps plein; temps complet | full-time; full time
temps partiel | part-time; part time
heures supplémentaires | overtime
horaires; horaire | working hours; hours; schedule
astreinte | on-call duty; on call
congé | leave; holiday; time off; day off
congés annuels; congé annuel | annual leave; paid leave; holiday entitlement
vacances | holiday; holidays; vacation
jour férié | bank holiday; public holiday
report | carry over; carry-over; carried over
reporter | carry over; postpone
compte épargne-temps; CET | time savings account; leave savings account
réduction du temps de travail; RTT | working time reduction; compensatory rest days
congé maladie; arrêt maladie; arrêt de travail | sick leave; sickness absence; sick note; fit note
maladie | sickness; illness
malade | sick; ill
jour de carence | waiting day; unpaid first day of sickness
congé de maternité | maternity leave
congé de paternité | paternity leave
naissance | birth
enfant | child
garde d'enfant | childcare
mariage | marriage; wedding
décès | death; bereavement
absence | absence
autorisation d'absence | leave of absence; authorised absence
médecin du travail; médecine du travail | occupational physician; occupational health
visite médicale | medical examination; medical check
télétravail; travail à distance; travail à domicile | telework; teleworking; remote work; working from home
télétravail | home working
télétravailler | telework; work remotely; work from home
domicile | home
tiers-lieu | coworking space
indemnité; allocation; prime | allowance; bonus; payment; compensation
indemnisation | compensation; reimbursement
rémunération; salaire; traitement; paie | pay; salary; wages; payroll
bulletin de paie; fiche de paie | payslip
déconnexion | disconnection; right to disconnect
joignable; joignabilité | reachable; contactable; availability
formation | training
formation continue | continuing training; further training
compte personnel de formation; CPF | personal training account
congé de formation | training leave
concours | competitive examination; civil service exam
plan de formation | training plan
accueil des nouveaux arrivants; intégration | onboarding; induction
nouvel arrivant; nouveaux arrivants | newcomer; new starter; new staff
badge | badge; pass
achat; achats; acquisition | purchase; purchasing; procurement; buying
commande publique; marchés publics | public procurement
marché; marché public | contract; public contract
appel d'offres | call for tenders; tender; invitation to tender
procédure adaptée | adapted procedure; simplified procedure
mise en concurrence; concurrence | competitive tendering; competition; competitive bidding
publicité | advertising; publication; advertisement
seuil | threshold
devis | quote; quotation; estimate
fournisseur; prestataire; titulaire | supplier; contractor; vendor; provider
consultant; prestataire externe | consultant; external consultant; contractor
sous-traitant | subcontractor
bon de commande | purchase order
facture | invoice
paiement | payment
carte achat | purchasing card; procurement card; purchase card
plafond; limite | limit; cap; ceiling; maximum
mensuel | monthly
annuel | annual; yearly
hebdomadaire | weekly
quotidien; journalier; par jour | daily; per day
montant | amount
hors taxes; HT | excluding tax; before tax; net of VAT
TVA | VAT
budget | budget
dépense; dépenses; frais | expense; expenses; spending; costs
note de frais | expense claim; expense report
justificatif; justificatifs; reçu | receipt; proof; supporting document
remboursement; rembourser | reimbursement; refund; reimburse
avance | advance
régie | imprest account; petty cash
déplacement; mission | business trip; travel; assignment; trip
ordre de mission | travel order; travel authorisation; mission order
frais de déplacement | travel expenses; travel costs
transport | transport; transportation
train | train; rail
première classe | first class
seconde classe | second class; standard class
avion | plane; flight; air travel
véhicule personnel; voiture personnelle | private car; personal vehicle; own car
véhicule de service | company car; service vehicle; fleet vehicle
indemnités kilométriques; barème kilométrique | mileage allowance; mileage rate
repas | meal; lunch; dinner
déjeuner | lunch
hébergement; nuitée; hôtel | accommodation; hotel; overnight stay; hotel night
réception | reception; event
cadeau; cadeaux | gift; gifts; present
invité | guest
alcool | alcohol; wine; drinks
conflit d'intérêts | conflict of interest
déontologie | ethics; code of conduct
référent déontologue | ethics officer; ethics referent
signature; signer | signature; sign
délégation de signature | delegation of signing authority
sécurité | security; safety
sécurité informatique; sécurité des systèmes d'information | IT security; information security; cybersecurity
RSSI | CISO; information security officer
informatique; service informatique; support informatique | IT; IT department; service desk; help desk
poste de travail; ordinateur | workstation; computer; desktop
ordinateur portable; portable | laptop; notebook
téléphone | phone; telephone
mot de passe | password
identifiant; identifiants | login; credentials; username
authentification | authentication
authentification à deux facteurs; double authentification | two-factor authentication; 2FA
authentification forte | multi-factor authentication; MFA; strong authentication
réseau privé virtuel; VPN | VPN; virtual private network
verrouiller; verrouillage | lock; locking
logiciel | software; application
installer; installation | install; installation
mise à jour | update; patch
clé USB; support amovible | USB stick; USB drive; removable media
chiffré; chiffrement | encrypted; encryption
hameçonnage | phishing
courriel; courriels; messagerie; mail; e-mail | e-mail; email; mail; mailbox; messages
boîte aux lettres; boîte de messagerie | mailbox; inbox
pièce jointe | attachment
archivage; archiver; archives | archiving; archive; archived
conservation; conserver | retention; keep; retain; storage
durée de conservation | retention period
virus | virus; malware
incident | incident
vol | theft; stolen
perte; perdu | loss; lost
signaler; signalement; déclarer | report; reporting; notify
usage personnel; utilisation personnelle | personal use; private use
internet | internet; web
journaux de connexion; traces | connection logs; logs
données personnelles; données à caractère personnel | personal data
protection des données | data protection
délégué à la protection des données; DPO | data protection officer; DPO
registre des traitements | record of processing activities; processing register
traitement de données | data processing
violation de données; fuite de données | data breach; personal data breach; data leak
notifier; notification | notify; notification
droit d'accès | right of access; access request
rectification | rectification; correction
effacement | erasure; deletion
consentement | consent
CNIL | CNIL; data protection authority
règlement; règlement intérieur | rules; regulation; internal rules
charte | charter; policy
note de service; circulaire | internal memo; circular
procédure | procedure; process
demande | request; application
formulaire | form
délai | deadline; time limit; notice; period
préavis | notice; notice period
validation; valider; approbation; approuver | approval; approve; validation; sign-off
autorisation; autoriser | authorisation; authorization; permission; allow
refus; refuser | refusal; refuse; reject
interdit; interdiction | forbidden; prohibited; not allowed; ban
obligatoire | mandatory; compulsory; required
jours ouvrés | working days; business days
jours ouvrables | working days
semaine | week
mois | month
année; an | year
heure; heures | hour; hours
jour; jours | day; days
bureau | office
site | site; premises
bâtiment | building
salle de réunion | meeting room
parking | car park; parking
cantine; restaurant administratif | canteen; staff restaurant
santé et sécurité au travail | health and safety at work; occupational safety
accident de service; accident du travail | work accident; occupational accident
Londres | London
France | France
étranger | abroad; foreign country
Union européenne | European Union; EU
"""


def _parse(text: str) -> list[tuple[list[str], list[str]]]:
    pairs = []
    for line in text.splitlines():
        if "|" not in line or line.lstrip().startswith("#"):
            continue
        fr, en = line.split("|", 1)
        pairs.append(([t.strip() for t in fr.split(";") if t.strip()], [t.strip() for t in en.split(";") if t.strip()]))
    return pairs


Key = tuple[frozenset[str], ...]


def _key(term: str) -> Key:
    return tuple(frozenset(stems(w)) for w in words(term))


@lru_cache(maxsize=4)
def _table(extra: str) -> dict[Key, frozenset[str]]:
    """Map each term (as a sequence of stem sets) to the stems of every term on the other side."""
    table: dict[Key, set[str]] = {}
    for french, english in _parse(GLOSSARY + "\n" + extra):
        for side, other in ((french, english), (english, french)):
            target = {s for term in other for w in words(term) for s in stems(w)}
            for term in side:
                key = _key(term)
                if key:
                    table.setdefault(key, set()).update(target)
    return {k: frozenset(v) for k, v in table.items()}


def load_extra(home: Path | None) -> str:
    """The administrator's own glossary lines (``$KIT_HOME/glossary.txt``), if any."""
    path = home / "glossary.txt" if home else None
    return path.read_text(encoding="utf-8") if path and path.is_file() else ""


@lru_cache(maxsize=4)
def _by_first_stem(extra: str) -> dict[str, list[Key]]:
    index: dict[str, list[Key]] = {}
    for key in _table(extra):
        for stem in key[0]:
            index.setdefault(stem, []).append(key)
    for keys in index.values():
        keys.sort(key=len, reverse=True)
    return index


def expand(query_words: Iterable[str], extra: str = "") -> list[frozenset[str]]:
    """For each word of the question, the stems of its translations (empty when none is known).

    Longer glossary terms win: "compte épargne-temps" is matched before "compte"."""
    table, first = _table(extra), _by_first_stem(extra)
    sets = [frozenset(stems(w)) for w in query_words]
    out: list[set[str]] = [set() for _ in sets]
    i = 0
    while i < len(sets):
        candidates = sorted({k for s in sets[i] for k in first.get(s, ())}, key=len, reverse=True)
        step = 1
        for key in candidates:
            window = sets[i:i + len(key)]
            if len(window) == len(key) and all(a & b for a, b in zip(window, key, strict=True)):
                for j in range(i, i + len(key)):
                    out[j] |= table[key]
                step = len(key)
                break
        i += step
    return [frozenset(s) for s in out]
