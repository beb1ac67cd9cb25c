"""The words of the triage classifier (``domain/triage.py``): spellings, negation, urgency signs
and the cues of the message types. Data only; the engine compiles it once at import.

Every word is written as the engine sees a token: lower case, accents stripped, SMS spellings
expanded (« jai » → « j ai »). A pattern is a sequence of slots separated by spaces; a slot is
alternatives separated by ``|``; an alternative ending in ``*`` matches any word (or lemma)
starting with it; a word matches a slot by its spelling or by its simplemma lemma (« veux »
matches ``vouloir``). Between two slots the words of ``FILLERS`` (articles, prepositions) are
skipped freely; ``~N`` before a slot also lets N other words stand before it. A pattern never
crosses a sentence or a comma.
"""

from __future__ import annotations


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


wordset = _wordset

#: SMS and casual spellings, as whole tokens → the words they stand for.
SMS: dict[str, tuple[str, ...]] = {
    "jai": ("j", "ai"),
    "g": ("j", "ai"),
    "jsuis": ("je", "suis"),
    "jsui": ("je", "suis"),
    "chui": ("je", "suis"),
    "chuis": ("je", "suis"),
    "jss": ("je", "suis"),
    "jpeux": ("je", "peux"),
    "jpe": ("je", "peux"),
    "jveux": ("je", "veux"),
    "jvais": ("je", "vais"),
    "jme": ("je", "me"),
    "jen": ("j", "en"),
    "quil": ("qu", "il"),
    "quils": ("qu", "ils"),
    "quon": ("qu", "on"),
    "jsp": ("je", "sais", "pas"),
    "jsais": ("je", "sais"),
    "chais": ("je", "sais"),
    "ya": ("il", "y", "a"),
    "yen": ("il", "y", "en"),
    "ca": ("ca",),
    "sa": ("sa",),
    "c": ("c", "est"),
    "cest": ("c", "est"),
    "ct": ("c", "etait"),
    "cetait": ("c", "etait"),
    "o": ("au",),
    "ds": ("dans",),
    "ki": ("qui",),
    "koi": ("quoi",),
    "kan": ("quand",),
    "qd": ("quand",),
    "ke": ("que",),
    "k": ("que",),
    "keske": ("qu", "est", "ce", "que"),
    "kesk": ("qu", "est", "ce", "que"),
    "pr": ("pour",),
    "pk": ("pourquoi",),
    "pq": ("pourquoi",),
    "bcp": ("beaucoup",),
    "bcq": ("beaucoup",),
    "bocou": ("beaucoup",),
    "tjrs": ("toujours",),
    "tjs": ("toujours",),
    "tjr": ("toujours",),
    "svp": ("s", "il", "vous", "plait"),
    "stp": ("s", "il", "te", "plait"),
    "slt": ("salut",),
    "bjr": ("bonjour",),
    "bsr": ("bonsoir",),
    "mrc": ("merci",),
    "mci": ("merci",),
    "pa": ("pas",),
    "pas": ("pas",),
    "nn": ("non",),
    "tt": ("tout",),
    "tte": ("toute",),
    "ts": ("tous",),
    "ptit": ("petit",),
    "ptite": ("petite",),
    "pti": ("petit",),
    "ptet": ("peut", "etre"),
    "rdv": ("rendez", "vous"),
    "rdz": ("rendez", "vous"),
    "rendezvous": ("rendez", "vous"),
    "ordo": ("ordonnance",),
    "ordos": ("ordonnance",),
    "ordonance": ("ordonnance",),
    "medoc": ("medicament",),
    "medocs": ("medicaments",),
    "doc": ("docteur",),
    "dr": ("docteur",),
    "dc": ("donc",),
    "auj": ("aujourd", "hui"),
    "ajd": ("aujourd", "hui"),
    "aujourdhui": ("aujourd", "hui"),
    "demin": ("demain",),
    "dmain": ("demain",),
    "tmtc": (),
    "mdr": (),
    "lol": (),
    "stv": ("si", "tu", "veux"),
    "pcq": ("parce", "que"),
    "psk": ("parce", "que"),
    "paske": ("parce", "que"),
    "mtn": ("maintenant",),
    "mnt": ("maintenant",),
    "mintenant": ("maintenant",),
    "dsl": ("desole",),
    "vs": ("vous",),
    "ns": ("nous",),
    "ac": ("avec",),
    "avk": ("avec",),
    "rien": ("rien",),
    "labo": ("laboratoire",),
    "secu": ("securite", "sociale"),
    "tps": ("temps",),
    "tkt": (),
    "oklm": (),
    "certif": ("certificat",),
    "exam": ("examen",),
    "anniv": ("anniversaire",),
    "nuit": ("nuit",),
    "ss": ("suis",),
    "envi": ("envie",),
    "fievr": ("fievre",),
    "fiev": ("fievre",),
    "temp": ("temperature",),
    "respir": ("respire",),
    "saingne": ("saigne",),
    "vomie": ("vomi",),
    "vomit": ("vomit",),
    "hosto": ("hopital",),
    "urgence": ("urgences",),
    "sang": ("sang",),
    "bb": ("bebe",),
    "bebe": ("bebe",),
    "nouveaune": ("nouveau", "ne"),
    "nvne": ("nouveau", "ne"),
    "tel": ("telephone",),
    "infarctu": ("infarctus",),
}

#: Common words simplemma does not list (invariant words) or that patients write without accents:
#: known as they are, never split as an elision nor corrected as a typo.
KNOWN_WORDS: frozenset[str] = _wordset(
    """
    dans sans sous sur vers chez avec pour par entre depuis pendant avant apres toujours jamais
    souvent parfois deja encore aussi ainsi alors donc mais ou et ni car cas dont tres trop peu
    assez beaucoup moins plus bien mal mieux ici la voici voila oui non si tant tout toute tous
    toutes rien personne quelque chaque lorsque puisque quand comme comment combien pourquoi
    quoi tot tard hier demain maintenant ensuite enfin surtout vite soudain environ presque
    pres loin dessus dessous dedans dehors contre selon malgre sauf parmi afin lors desormais
    bebe bebes fievre etait etais etre ete tete apres medecin medecins medicament medicaments
    derniere dernier premiere premier deuxieme troisieme annee annees frere pere mere meme
    enfant enfants ecole eleve numero telephone reponse repondre reveiller reveille securite
    deja ca etes etions etiez etaient enceinte epaule epaules genou genoux cote dos ventre
    gorge oreille oreilles oeil yeux levre levres nez bouche visage jambe jambes pied pieds
    main mains bras doigt doigts peau coeur poumon poumons poitrine sang urine urines selles
    regles pilule vaccin vaccins prise prises sante soin soins tension diabete asthme allergie
    allergies eczema boutons bouton plaque plaques tache taches rougeur rougeurs douleur douleurs
    vertige vertiges nausee nausees toux rhume grippe angine otite cystite infection
    certificat attestation mutuelle facture ordonnance rendez vous consultation cabinet docteur
    merci bonjour bonsoir salut cordialement madame monsieur svp stp desole desolee
    lundi mardi mercredi jeudi vendredi samedi dimanche matin soir nuit semaine semaines mois
    ans jours heure heures minutes fois quelques plusieurs autre autres
    """
)

#: « avc » is a stroke, but SMS also writes it for « avec »: before these words it means « avec ».
AVEC_BEFORE: frozenset[str] = _wordset(
    "mon ma mes ton ta tes son sa ses notre votre nos vos leur leurs le la les l un une des "
    "toi moi lui elle eux vous nous plaisir"
)

#: Skipped freely between the slots of a pattern.
FILLERS: frozenset[str] = _wordset(
    "le la les l un une des de d du a au aux en dans sur par me m se s te t y lui leur "
    "tres trop un peu vraiment bien"
)

#: Words that negate what follows within a short window (« pas de », « aucune », « sans »).
NEGATORS: frozenset[str] = _wordset(
    "pas plus aucun aucune aucuns aucunes sans ni jamais rien nullement guere"
)
#: The words that end a negation's reach (and a hypothetical's): a new clause or subject starts.
SCOPE_BREAKERS: frozenset[str] = _wordset(
    "mais et que qu si quand lorsque lorsqu car parce puisque puisqu puis alors donc sauf "
    "cependant pourtant contre toutefois neanmoins sinon ensuite depuis "
    "je j tu il elle on nous vous ils elles ca c cela ce "
    "mon ma mes ton ta tes son sa ses notre votre nos vos leur leurs"
)
#: How many words (fillers not counted) may stand between a negator and the sign it negates.
NEGATION_WINDOW = 4

# ---------------------------------------------------------------------------------------------
# Urgency signs, by kind. A kind's label is what the practice sees; the patterns are its words.
# ---------------------------------------------------------------------------------------------

URGENCY_LABELS: dict[str, tuple[str, str]] = {
    "douleur-thoracique": ("douleur thoracique", "chest pain"),
    "detresse-respiratoire": ("difficulté à respirer", "breathing difficulty"),
    "avc": ("signes d'AVC", "stroke signs"),
    "hemorragie": ("saignement abondant", "heavy bleeding"),
    "nourrisson-febrile": (
        "nourrisson fébrile (moins de 3 mois)",
        "feverish infant (under 3 months)",
    ),
    "anaphylaxie": ("réaction allergique grave", "severe allergic reaction"),
    "surdose": ("surdose ou intoxication", "overdose or poisoning"),
    "idees-suicidaires": ("idées suicidaires", "suicidal thoughts"),
    "violence": ("violence", "violence"),
    "perte-de-connaissance": ("malaise grave, convulsions", "loss of consciousness, seizure"),
    "meningite": ("signes de méningite ou purpura", "meningitis or purpura signs"),
}

_PAIN = (
    "douleur*|mal|serre*|serrement*|oppress*|point|poids|brulure*|brule|ecrase*|ecrasement*|"
    "barre|etau|pique|pincement*|compress*"
)
_CHEST = "poitrine|thorax|thoraci*|sternum|torse"

URGENCY_PATTERNS: dict[str, tuple[str, ...]] = {
    "douleur-thoracique": (
        f"{_PAIN} ~2 {_CHEST}",
        f"{_CHEST} ~2 {_PAIN}|fait|serree|ecrasee|comprimee|oppressee",
        "douleur*|douleurs ~1 coeur",
        "coeur ~1 serre*|comprime*|ecrase*",
        "infarctus|infarctu",
        "crise cardiaque",
        "arret cardiaque",
        "douleur*|mal|irradi*|descend* ~3 bras gauche",
        "douleur*|mal|irradi* ~3 machoire|mandibule",
    ),
    "detresse-respiratoire": (
        "mal|difficulte*|difficile|peine|gene|galere ~2 respir*",
        "respir* ~1 mal|difficilement|difficile|plus|pas|vite|bizarre*|fort|siffl*|peine|"
        "plu !nez|narine*",
        "respir* ~1 avec difficulte|peine",
        "peux|peut|pouvoir|arrive|arriv*|parvien*|parvenir ~1 pas|plus ~1 respir*",
        "arriv* ~1 pas|plus ~1 reprendre ~1 souffle|respiration",
        "etouff*|suffoqu*|asphyxi*",
        "mal|difficulte*|peine ~2 reprendre ~1 souffle|respiration",
        "manque|manquer ~1 air|souffle|oxygene",
        "cherche|chercher ~1 air|respiration|souffle",
        "essouffl*|essouf* ~3 repos|parler|assis|allonge*|moindre|marcher|rien_faire|beaucoup|"
        "enormement",
        "souffle court|coupe",
        "bout souffle",
        "levres|ongles|visage ~2 bleu*|bleue*|violet*|grise*",
        "cyanos*",
        "tirage",
        "creuse ~2 ventre|cotes|thorax|cou",
        "ventoline|bronchodilatateur|inhalateur ~3 marche|fait|suffit|agit|soulage ~1 pas|plus|"
        "rien",
        "ventoline|inhalateur ~3 aucun|sans ~1 effet",
        "crise ~1 asthme ~3 grave|forte|severe|arrete_pas|passe_pas|passe_plus",
        "detresse respiratoire",
    ),
    "avc": (
        "bras|jambe|main|cote|moitie|visage|pied|bouche ~3 bouge|bouger ~1 plus|pas",
        "bouche|visage|levre*|sourire|figure|joue ~3 travers|tordu*|deform*|paralys*|tombe*|"
        "affaiss*|pend|asymetr*|bizarre",
        "paralys*|hemiplegi*",
        "bras|jambe|main|cote|moitie|pied ~3 repond ~1 plus|pas",
        "bras|jambe|main|cote|moitie ~3 engourdi*|insensible*|lourd|lourde|faible|inerte|mort|"
        "morte|paralyse*",
        "peux|peut|pouvoir|arrive|arriv*|parvien*|parvenir ~1 pas|plus ~2 parler|articuler|"
        "lever|bouger|trouver ~2 bras|mots|phrases|jambe|parler|articuler",
        "peux|peut|pouvoir|arrive|arriv*|parvien*|parvenir ~1 pas|plus ~1 parler|articuler",
        "parle|parlait|parler ~2 bizarre*|travers|incoherent*|difficilement|mal|charabia|bouillie",
        "mots|phrases|paroles ~3 sortent|viennent|sortaient|venaient ~1 pas|plus|mal|melange*|"
        "travers",
        "cherche ~1 mots",
        "trouve|trouver|trouvait ~1 plus|pas ~2 mots",
        "melange ~2 mots",
        "avc|attaque_cerebrale|accident_vasculaire",
        "hemorragie cerebrale|meningee",
        "voit|vois|voir|vision ~2 double|plus|trouble|brouill* ~3 soudain*|brutal*|brusque*|coup",
        "perdu|perte ~2 vue|vision ~3 soudain*|brutal*|brusque*|coup|oeil",
        "mal|douleur*|maux|cephalee* ~2 tete ~3 violent*|brutal*|atroce*|insupportable*|pire|"
        "jamais_eu|coup|explos*",
        "pire ~2 mal|maux|douleur* ~2 tete",
    ),
    "hemorragie": (
        "sang ~0 plein",
        "sang|saign* ~10 anticoagul*|previscan|eliquis|xarelto|coumadine|sintrom|pradaxa|lovenox",
        "anticoagul*|previscan|eliquis|xarelto|coumadine|sintrom|pradaxa|lovenox ~10 sang|saign*",
        "saign* ~3 beaucoup|abondamment|enormement|fort|partout|abondant*|torrent*|litre*|flot",
        "pisse|coule|couler ~2 sang",
        "saign* ~8 arrete|arreter|arrete|stop|stoppe ~1 pas|plus",
        "saign* ~2 sans ~1 arret|cesse|interruption",
        "arrete|arreter|arrete|cesse|stoppe ~2 pas|plus ~2 saign*",
        "hemorrag*",
        "perte*|perd|perds ~2 sang ~3 importante*|abondante*|enorme*|beaucoup|grosse*",
        "beaucoup|plein|flaque|mare ~0 sang",
        "vomi*|crach*|rend ~2 sang",
        "sang ~2 partout",
        "enceinte ~8 saign*|perte*_sang|perds_sang|perd_sang|caillot*|hemorrag*",
        "saign*|caillot* ~8 enceinte|grossesse",
        "selles ~2 noires|noir",
        "plaie|coupure|entaille ~3 profonde|beante|pisse",
    ),
    "nourrisson-febrile": (),  # age and fever are found by the engine, see triage.py
    "anaphylaxie": (
        "gonfl*|enfl*|oedem*|boursoufl* ~3 levre*|visage|gorge|langue|yeux|paupiere*|bouche|"
        "figure|face|cou",
        "levre*|visage|gorge|langue|paupiere*|bouche|figure|face ~3 gonfl*|enfl*|double*|"
        "boursoufl*",
        "gorge ~3 serre*|ferme*|gonfl*",
        "avaler ~2 plus|pas ~3 gorge|gonfl*",
        "choc ~1 anaphylact*|allergique",
        "anaphylax*|quincke|quinck*",
        "reaction allergique ~4 grave|forte|respir*|gonfl*|gorge|partout|malaise|severe",
        "urticaire|plaques|boutons ~4 partout|tout corps ~3 respir*|gorge|gonfl*|malaise",
        "fait|utilise*|pique*|injecte*|mis ~2 epipen|anapen|jext|adrenaline|emerade",
        "piqu* ~3 guepe|abeille|frelon ~6 gonfl*|respir*|malaise|gorge|urticaire|plaques",
    ),
    "surdose": (
        "avale*|bouffe* ~2 tout|toute|toutes|tous ~2 somnifere*|anxiolytique*|antidepresseur*|"
        "calmant*|neuroleptique*|lexomil|xanax|stilnox|imovane|doliprane|paracetamol",
        "bu|avale* ~4 bouteille*|alcool|whisky|vodka|rhum|vin ~6 cachet*|comprim*|medicament*|"
        "somnifere*|anxiolytique*|calmant*|pilule*",
        "avale*|pris ~4 cachet*|comprim*|medicament*|somnifere*|anxiolytique*|calmant*|pilule* "
        "~6 bouteille*|alcool|whisky|vodka|rhum",
        "surdose|overdose|surdosage",
        "avale*|pris|prise|mange*|bu|bouffe* ~2 tout|toute|toutes|tous ~2 boite*|plaquette*|"
        "tube*|flacon*",
        "avale*|bouffe* ~2 tout|toute|toutes|tous ~2 comprim*|cachet*|pilule*|gelule*|"
        "medicament*|medicaments",
        "avale*|pris|prise|mange*|bu ~3 boite*|plaquette*|flacon* ~1 entiere*|complete*",
        "avale*|pris|prise|mange*|bu|donne* ~2 trop ~2 comprim*|cachet*|pilule*|gelule*|"
        "medicament*|doliprane|paracetamol|efferalgan|dafalgan|insuline|lexomil|xanax|"
        "somnifere*|anxiolytique*|tramadol|morphine|lamaline|stilnox|subutex|methadone",
        "avale*|bu|mange*|bouffe*|lech*|respire* ~4 javel|produit_menager|produit_vaisselle|"
        "liquide_vaisselle|detergent*|deboucheur*|pile|piles|aimant*|lessive|essence|"
        "white_spirit|insecticide*|raticide|mort_aux_rats|antigel|solvant*|soude|acide",
        "fils|fille|enfant|bebe|petit*|gamin*|neveu|niece|loulou ~8 avale*|mange*|"
        "croque* ~3 comprim*|cachet*|pilule*|gelule*|medicament*|medicaments|doliprane|sirop|"
        "flacon*|boite*",
        "intoxi*|empoisonn* !alimentaire*",
        "monoxyde",
    ),
    "idees-suicidaires": (
        "suicid*|suicd*",
        "idee* ~1 noire*|sombre*|suicidaire*|mort",
        "en finir !avec",  # « en finir avec ces papiers » is not; « avec la vie » is
        "en finir avec ~1 vie|tout|existence|moi|jours",
        "finir ~2 vie|jours|tout",
        "mettre ~1 fin ~2 jours|vie",
        "me|te|se =tuer|=foutre_air|=flinguer|=pendre",
        "plus|pas|aucun|aucune|perdu ~2 envie|gout|raison|force|interet|sens|but ~3 "
        "vivre|vie|continuer|battre|exister",
        "vouloir|veux|voulais|voudrais ~1 plus|pas ~1 vivre|exister",
        "marre ~2 vivre|vie|exister",
        "veux|voudrais|vouloir|envie ~2 tout ~1 arrete|s_arrete|finisse|arreter|s_arreter",
        "vouloir|envie|veux|voudrais|prefere* ~3 mourir|crever|disparaitre|"
        "partir_pour_toujours|mort",
        "mieux ~1 si ~3 mort|morte|disparaissai*|partai*|crevai*|plus_la|n_etais_plus|n_etait_plus",
        "mieux sans_moi",
        "disparaitre ~2 toujours|definitivement|monde|jamais",
        "dormir|endormir|endormi* ~3 toujours|jamais ~2 reveill*",
        "dormir|endormir|endormi* ~1 pour_toujours|eternite|definitivement",
        "dormir|endormir|endormi*|fermer ~2 yeux ~3 plus ~1 reveill*|toujours",
        "vouloir|envie|veux|voudrais|prefere* ~3 plus|jamais ~1 reveill*",
        "sert ~1 rien ~2 vivre|continuer|vie",
        "a quoi bon ~2 vivre|continuer",
        "vie ~3 plus ~1 sens|rien|interet",
        "fardeau|poids ~3 pour ~1 famille|enfants|proches|tout_monde|autres",
        "sans moi ~3 mieux",
        "adieu",
        "lettre ~1 adieu",
        "peur|envie|tente*|vais|pourrais|risque ~3 faire ~1 betise|betises|connerie|conneries",
        "scarifi*|mutil*",
        "faire ~1 mal ~1 moi meme",
        "couper ~2 veines",
        "sauter ~3 pont|fenetre|balcon|toit|falaise|train|immeuble",
        "jeter ~3 pont|fenetre|balcon|train|metro|voiture|sous",
        "pendre|pendu|pendaison",
        "avaler ~2 tout|toutes|tous ~2 comprim*|cachet*|medicament*|boite*|pilule*",
    ),
    "violence": (
        "me|m|nous|la|le|l|les|te|t ~1 frapp*|bat|battu*|tape|tapait|cogne*|etrangl*|gifl*|"
        "secoue*|brutalis*|viole|violee|violait|agresse|agressee|menace|menacee|menacait|"
        "enferme|enfermee",
        "ete|suis|est|fait ~1 frappe*|battu*|agresse|agressee|agresses|viole|violee|violes|"
        "violees|tabass*|molest*|etrangl*",
        "viol|violences",
        "violence ~1 conjugale*|domestique*|familiale*|sexuelle*",
        "violent|violente ~1 avec ~1 moi|nous|enfants|mes|elle|lui",
        "coups|coup ~1 poing|ceinture",
        "coups|coup|frappe* ~6 mari|conjoint|compagnon|copain|ex|femme|beau_pere|pere|mere",
        "peur ~3 rentrer ~2 maison|chez",
        "peur mon|ma ~0 mari|conjoint|compagnon|copain|copine|ex|femme|pere|mere|frere",
        "bebe|nourrisson|enfant ~2 secoue*",
        "attouchement*|abus_sexuel*|inceste",
        "maltrait*|battue|tabass*",
        "me|m|la|l|nous ~0 pousse*|jete* ~3 escalier*|mur|terre|sol",
        "menace* ~3 mort|tuer|couteau|arme",
    ),
    "perte-de-connaissance": (
        "perdu|perte|perd ~2 connaissance|conscience",
        "evanoui*|syncope",
        "tombe* ~2 pommes",
        "inconscient*|inanime*",
        "reagit|repond|reagi ~2 plus|pas|rien ~3 quand|on|secoue|appelle|parle|stimul*",
        "reveille*|reveiller ~1 pas|plus",
        "arrive|arriv* ~1 pas|plus ~1 reveiller|reveill*",
        "convuls*|convulsion*",
        "crise ~1 epilep*|convulsive",
        "yeux ~2 revulse*",
        "malaise ~3 grave|tombe*|par_terre|perdu|sol",
        "tombe* ~3 sol|par_terre ~3 bouge_plus|repond_plus|reagit_plus",
    ),
    "meningite": (
        "tache*|bouton*|plaque*|point* ~4 effacent|partent|disparaissent ~1 pas|plus ~2 appui*|"
        "presse*|verre|appuie",
        "tache*|bouton*|plaque*|point* ~3 violet*|violac*|noir*|pourpre*",
        "purpura",
        "raideur*|raide|bloquee ~2 nuque|cou",
        "nuque ~2 raide|bloquee|rigide|plier",
        "meningite",
    ),
}

#: A sign in a sentence with one of these is over (« la semaine dernière », « il y a 3 ans »),
#: unless the message also says it is happening now (PRESENT_MARKERS).
PAST_MARKERS: tuple[str, ...] = (
    "semaine*|mois|annee|an|ete|hiver|automne|printemps ~1 dernier|derniere|passe|passee",
    "il y a ~3 semaine*|mois|an|ans|annee*",
    "avant ~2 hier",
    "autrefois|jadis",
    "a l epoque",
    "antecedent*|atcd|historique",
    "quand ~2 etais|etait|petit|petite|jeune",
    "c est passe",
    "est passe|passee",
    "ca va mieux",
    "resolu|gueri|guerie",
)
#: Just before a sign, these say it is history (« suite à son AVC », « depuis mon infarctus »).
EVENT_PAST_MARKERS: tuple[str, ...] = (
    "suite ~1 mon|ma|son|sa|mes|ses|leur|notre",
    "suite a|au|aux",
    "depuis|apres|lors ~1 mon|ma|son|sa|mes|ses|leur|notre",
    "deja ~2 eu|fait|fais|faits",
    "antecedent*|atcd",
    "fait ~2 un|une ~1 il y a",
)
#: A message with one of these speaks of now: a past marker does not set its signs aside.
PRESENT_MARKERS: tuple[str, ...] = (
    "maintenant|actuellement|recommenc*|reprend|reprise|revient|reviennent|revenu*|revenue*",
    "en ce moment",
    "a|de nouveau",
    "encore",
    "aujourd hui",
    "ce|cette|cet ~0 matin|soir|nuit|apres_midi|moment|midi",
    "hier|tout_a_l_heure",
    "depuis ~2 minute*|min|heure*|h|matin|soir|nuit|midi|hier|tout_a_l_heure|tantot",
    "en cours",
    "pendant ~1 que",
    "la ~0 maintenant",
)
#: Before a sign in its clause, these make it a question about a case that has not happened.
HYPOTHETICAL_MARKERS: tuple[str, ...] = (
    "en cas",
    "au cas",
    "si jamais",
    "que|quoi ~1 faire ~2 si",
    "risque*",
    "preven*|prevention|eviter|depist*",
    "signes ~1 de|d",
    "symptomes ~1 de|d",
    "reconnaitre",
    "est ce que ~3 peut|peuvent|pourrait|provoque*|donne*|cause*",
    "peut|peuvent|pourrait ~1 provoquer|donner|causer|entrainer",
    "effet* ~1 secondaire*|indesirable*",
)

# ---------------------------------------------------------------------------------------------
# Message types: weighted cues per default type; a practice's extra keywords weigh KEYWORD_WEIGHT.
# ---------------------------------------------------------------------------------------------

KEYWORD_WEIGHT = 3.0
#: Cues found in the subject weigh this many times more than in the body.
SUBJECT_FACTOR = 2.0
#: Added to `hors-champ` per urgent sign kind: an emergency is a complaint mail cannot handle.
URGENT_OUT_OF_SCOPE = 3.0

TYPE_CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "resultats": (
        ("resultat*", 3),
        ("analyse*", 2),
        ("prise|prises ~1 sang", 2),
        ("bilan*", 2),
        ("compte ~0 rendu|rendus", 2),
        (
            "radio|radiographie|scanner|irm|echographie|echo|mammographie|mammo|scintigraphie|"
            "ecg|electrocardiogramme|holter|doppler|coloscopie|fibroscopie|endoscopie",
            1.5,
        ),
        (
            "biopsie|frottis|ecbu|serologie|pcr|hba1c|tsh|psa|cholesterol|glycemie|ferritine|"
            "creatinine|plaquettes|hemoglobine|triglycerides|vitamine|crp|inr|taux",
            1.5,
        ),
        ("laboratoire|labo|lab", 1.5),
        ("recu ~3 resultat*|analyse*|compte_rendu|courrier|mail", 1),
        (
            "interpret*|signifie|veut_dire|normal|normaux|normale|eleve*|basse|haut|haute",
            0.5,
        ),
        ("test ~1 grossesse|covid|allergique", 1),
        ("dosage|depistage|examen*", 1),
    ),
    "conseil": (
        (
            "puis|peux|peut|pouvoir|dois|doit|devoir|faut ~2 prendre|donner|continuer|arreter|"
            "associer|melanger|boire|manger|faire|garder|mettre|reprendre|doucher|baigner|"
            "conduire|allaiter|voyager",
            3,
        ),
        (
            "est ce que ~3 prendre|donner|continuer|arreter|associer|normal|possible|grave|"
            "compatible|dangereux|risque",
            1,
        ),
        ("conseil*|recommand*|avis", 2),
        ("combien ~2 temps|fois|jours|comprim*|dose*|gouttes", 2),
        ("posologie|dose|dosage|prise|prises|comprim*|gelule*|sirop|gouttes", 1),
        ("effet* ~1 secondaire*|indesirable*", 2),
        ("oubli*", 2),
        ("vaccin*|rappel", 1.5),
        ("compatible|interaction*|contre_indiqu*|melanger|associer", 2),
        ("allait*|enceinte|grossesse", 0.5),
        (
            "pansement*|cicatri*|points|fils|douche|bain|baignade|piscine|sport|voyage|avion|"
            "soleil|alcool|regime|alimentation|jeun|manger|nourriture|boire",
            1,
        ),
        (
            "doliprane|paracetamol|ibuprofene|advil|nurofen|spasfon|smecta|efferalgan|dafalgan|"
            "aspirine|antibiotique*|amoxicilline|augmentin|cortisone|solupred|creme|pommade|"
            "collyre|spray|lavage|serum",
            1,
        ),
        ("normal|normale ~2 que|qu|si|apres|d avoir", 1),
        ("comment ~2 faire|prendre|utiliser|soigner|soulager|calmer|faire_baisser", 2),
        ("soulager|calmer|faire_baisser|faire_passer", 1.5),
        ("quelle ~1 dose|quantite|heure", 2),
        ("comment", 1.5),
        ("signes|symptomes ~1 d|de", 1.5),
        ("est_ce|c_est ~1 normal|normale|bien|grave_si|dangereux", 1.5),
        ("en_cas|au_cas|si_jamais|que_faire_si|quoi_faire_si", 2),
        ("peut|peuvent|pourrait ~1 provoquer|donner|causer|entrainer", 2),
        ("dois|doit|faut|devrais|devrait ~2 consulter|appeler", 1.5),
        ("par ~0 erreur|megarde", 2),
        ("deux|2 ~0 fois|doses", 1),
        ("toutes ~2 heures|h|4h|6h|8h", 1.5),
        ("combien ~2 heure*|semaines|mois", 2),
        ("que|quoi ~1 faire", 1),
        ("que|quoi ~1 mettre|appliquer|donner|utiliser", 1.5),
    ),
    "renouvellement": (
        ("renouvel*|renouvele*|reconduire|reconduction", 4),
        ("ordonnance*|ordo|prescription*", 2.5),
        ("represcri*|prescri*", 1.5),
        (
            "traitement*|medicament*|medicaments|pilule|contraception|insuline|ventoline|"
            "levothyrox|kardegic|metformine|statine|antihypertenseur|patch*|lunettes|seringue*|"
            "bandelette*|lecteur|capteur*|freestyle|bas_contention|aiguilles",
            1,
        ),
        (
            "plus|fin|manque|epuise*|termine*|derniere* ~2 boite*|comprim*|medicament*|"
            "medicaments|pilule*|traitement*|plaquette*|stock|ordonnance*|cachet*",
            2,
        ),
        ("habituel*|chronique*|fond|au_long_cours|de_base", 1.5),
        ("pharmacie*|pharmacien*", 1.5),
        ("boite*|plaquette*|mois|trimestre|trimestriel*", 0.5),
        ("refaire|faire ~2 ordonnance*", 2),
        ("refaire|refais|prolonger", 1.5),
        (
            "ordonnance*|traitement*|boite*|medicament*|medicaments|pilule*|"
            "plaquette* ~2 termine*|finie|fini|epuise*|expire*|perime*|arrive_a_terme",
            2,
        ),
        ("pour ~1 1|un|2|deux|3|trois|6|six|douze|12 ~0 mois|an", 1.5),
        ("kine|kinesitherap*|infirmi*|soins ~3 seances|ordonnance*|prescription*", 1),
    ),
    "rendez-vous": (
        ("rendez|rdv", 4),
        ("creneau*|disponibilit*|dispo|dispos|agenda|planning|doctolib|horaire*", 3),
        ("place|places ~2 lundi|mardi|mercredi|jeudi|vendredi|samedi|demain|semaine|matin|pour", 2),
        (
            "annuler|annule*|annulation|deplacer|decaler|reporter|report|avancer|changer|"
            "modifier ~3 rendez|rdv|consultation|visite|creneau|seance",
            3,
        ),
        ("annuler|annulation|deplacer|decaler|reporter|avancer", 1.5),
        ("consultation|consulter|visite|voir|passer|venir|recevoir", 1),
        ("prendre|avoir|fixer ~2 rendez|rdv|consultation", 2),
        (
            "lundi|mardi|mercredi|jeudi|vendredi|samedi|demain|matin|apres_midi|"
            "semaine_prochaine|h|heure*",
            0.5,
        ),
        ("domicile|cabinet|teleconsultation|visio", 1),
        ("retard|empeche*|imprevu|pourrai ~1 pas ~1 venir|venir", 1.5),
        ("quand ~2 pouvez|pourriez|pouvoir ~2 recevoir|voir|passer", 2),
    ),
    "administratif": (
        ("certificat*|attestation*|justificatif*", 3),
        ("arret ~0 travail|maladie", 3),
        ("arret", 1),
        ("feuille* ~1 soin*|soins|maladie", 3),
        (
            "mutuelle*|assurance*|prevoyance|cpam|caf|mdph|ameli|securite_sociale|carte_vitale|"
            "vitale|tiers_payant|remboursement*|rembourse*|prise_en_charge|ald",
            2.5,
        ),
        (
            "facture*|facturation|paiement|payer|paye|honoraire*|devis|regler|reglement|cheque|"
            "virement|depassement*|tarif*|prix",
            2.5,
        ),
        (
            "formulaire*|dossier*|papier*|document*|courrier*|lettre*|questionnaire|signature|"
            "signer|remplir",
            1.5,
        ),
        (
            "sport|licence|club|ecole|creche|cantine|colonie|pai|permis|aptitude|crossfit|"
            "natation|judo|foot*|course|marathon",
            1,
        ),
        (
            "employeur|travail|boulot|rh|medecine_du_travail|accident_du_travail|at|aidant|"
            "conge*|pole_emploi|france_travail",
            1,
        ),
        ("medecin traitant ~1 declar*|declaration|changer", 2),
        ("declar*|declaration ~3 medecin_traitant", 3),
        ("dossier ~1 medical|medicaux", 2),
        ("copie|double|duplicata", 1.5),
        ("bon ~1 transport", 3),
        ("adresse|nom|mail|telephone ~1 changement|changer|change", 1),
    ),
    "hors-champ": (
        (
            "qu_est_ce_que_c_est|qu_est_ce_que_j_ai|qu_est_ce_qu_il_a|qu_est_ce_qu_elle_a|"
            "ce_que_j_ai|c_est_quoi|ca_peut_etre_quoi|ca_pourrait_etre|quelle_maladie|"
            "de_quoi_souffr*|de_quoi_il_s_agit|de_quoi_pourrait*|qu_en_pensez|votre_avis|"
            "a_votre_avis|que_pensez",
            2.5,
        ),
        ("diagnosti*|grave|inquiet*|inquiete|inquietude|angoisse*|peur|stress*", 1.5),
        ("est ce ~1 grave|cancer|infection|allergie|contagieux|lie|une|un", 1.5),
        ("nouveau|nouvelle|apparu*|apparition|commence*|depuis", 1.5),
        (
            "mal|douleur*|maux|bouton*|plaque*|rougeur*|tache*|grosseur|boule|kyste|demange*|"
            "gratte|fievre|toux|tousse|vomi*|vomissement*|diarrhee*|vertige*|gonfl*|enfl*|"
            "saign*|brulure*|nausee*|migraine*|fatigue*|essouffl*|palpitation*|insomnie|pus|"
            "eczema|bosse|lesion*|gene|raide|rouge|ronfl*|apnee*|mordu|mordre|morsure|"
            "grain_de_beaute|verrue*|hernie|kyste|burn_out|burnout|depression|deprime*|pleure|"
            "triste*|angoiss*|anxi*|confus*|oubli_tout|boite|boiter|fourmi*|engourdi*|perte*|"
            "chute_de_cheveux",
            1.2,
        ),
        ("change* ~2 couleur|aspect|taille|forme", 1.5),
        ("photo*|regardez|regarder|image", 1.5),
        ("examiner|ausculter|voir ~2 ce que", 1.5),
        (
            "spam|promo*|promotion*|offre*|gagn*|gratuit*|cliquez|clic|lien|abonne*|desabonn*|"
            "desinscri*|newsletter|bitcoin|crypto*|investiss*|placement*|credit|pret|casino|"
            "loterie|heritage|seo|referencement|site_web|publicite|prospect*|partenariat|"
            "webinaire|formation|solution|logiciel|devis_gratuit|viagra|cialis|rencontre*|"
            "celibataire*|reduction|soldes|offre_exclusive|felicitations|colis",
            2.5,
        ),
        ("unsubscribe|click|free|offer|winner|dear|congratulations|money|bank|loan", 2.5),
        ("enquete|sondage|questionnaire ~1 satisfaction", 1),
        ("depuis ~2 jours|semaines|mois|hier|ce matin", 1),
    ),
}
