"""A synthetic ``extraction-correspondance-mssante.txt``: the national MSSanté directory's public
extraction format (UTF-8, ``|``-separated, one header line), with realistic French names,
professions, specialties, structures and cities (accents included), and hostile rows: wrong
column count, bad UTF-8, 10 kB fields, quotes, a bare CR, an empty line.

Deterministic (``--seed``). Tests use a few hundred rows; the benchmark 535,000.

    python -m bench.annuaire_gen OUT [-n 535000] [--seed 18] [--shuffle-columns]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER = (
    "Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP",
    "Identification nationale PP", "Type identifiant structure", "Identification Structure",
    "Service de rattachement", "Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice",
    "Code catégorie professionnelle", "Libellé catégorie professionnelle", "Code profession",
    "Libellé profession", "Code savoir-faire", "Libellé savoir-faire", "Dématérialisation",
    "Raison sociale / Enseigne", "Complément destinataire", "Numéro et libellé de voie",
    "Lieu-dit", "Code postal", "Commune", "Département", "Pays",
)  # fmt: skip

LAST_NAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Müller", "Lefebvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand",
    "Duval", "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier",
    "Brun", "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier",
    "Arnaud", "Martínez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin",
    "Vidal", "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas",
    "Lacroix", "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc",
    "Payet", "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy",
    "Guillot", "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis",
    "Deschamps", "Huet", "Vasseur", "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet",
    "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré", "Charles", "Renault",
    "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet",
    "Perrot", "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois",
    "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré", "Lebrun",
    "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier", "Michaud",
    "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier", "Chevallier",
    "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard", "Maréchal",
    "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy", "Cordier", "Pichon",
    "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier", "Laporte", "N'Diaye",
    "Œuvrard", "D'Arcy", "Saint-Just",
)  # fmt: skip
FIRST_NAMES = (
    "Marie", "Jean", "Pierre", "Michel", "André", "Philippe", "Nathalie", "Isabelle",
    "Sylvie", "Catherine", "Françoise", "Christine", "Anne", "Valérie", "Sandrine", "Stéphane",
    "Éric", "Frédéric", "Laurent", "Olivier", "Nicolas", "Christophe", "Julien", "Sébastien",
    "Céline", "Aurélie", "Émilie", "Camille", "Léa", "Chloé", "Manon", "Inès", "Hélène",
    "Agnès", "Béatrice", "Jérôme", "Grégoire", "Thérèse", "Joël", "Noémie", "Zoé", "Maëlle",
    "Loïc", "Gaëlle", "Anaïs", "Jean-François", "Marie-Hélène", "Jean-Luc", "François-Xavier",
    "Benoît", "Amélie", "Clémence", "Mathéo", "Raphaël", "Timothée", "Cécile", "Delphine",
)  # fmt: skip
#: (code, label, weight, specialties)
PROFESSIONS: tuple[tuple[str, str, int, tuple[tuple[str, str], ...]], ...] = (
    ("10", "Médecin", 40, (
        ("SM54", "Médecine générale"), ("SM04", "Cardiologie et maladies vasculaires"),
        ("SM15", "Dermatologie et vénéréologie"), ("SM26", "Gynécologie-obstétrique"),
        ("SM42", "Pédiatrie"), ("SM53", "Psychiatrie"), ("SM40", "Ophtalmologie"),
        ("SM02", "Anesthésie-réanimation"), ("SM44", "Pneumologie"),
        ("SM38", "Oto-rhino-laryngologie"), ("SM48", "Radiodiagnostic et imagerie médicale"),
        ("SM24", "Gastro-entérologie et hépatologie"), ("SM34", "Néphrologie"),
        ("SM37", "Neurologie"), ("SM25", "Endocrinologie, diabétologie, nutrition"),
        ("SM50", "Rhumatologie"), ("SM20", "Chirurgie orthopédique et traumatologie"),
        ("SM05", "Oncologie médicale"), ("SM30", "Médecine d'urgence"), ("SM31", "Gériatrie"),
    )),
    ("21", "Pharmacien", 12, (("", ""),)),
    ("40", "Chirurgien-dentiste", 8, (("SCD01", "Orthopédie dento-faciale"), ("", ""))),
    ("50", "Sage-femme", 4, (("", ""),)),
    ("60", "Infirmier", 18, (("", ""), ("SI01", "Infirmier de bloc opératoire"),
                             ("SI02", "Puériculture"))),
    ("70", "Masseur-kinésithérapeute", 9, (("", ""),)),
    ("80", "Pédicure-podologue", 2, (("", ""),)),
    ("91", "Orthophoniste", 3, (("", ""),)),
    ("94", "Psychomotricien", 1, (("", ""),)),
    ("96", "Orthoptiste", 1, (("", ""),)),
    ("26", "Audioprothésiste", 1, (("", ""),)),
)  # fmt: skip
#: (city, postcode, department, weight)
CITIES = (
    ("Paris", "75", "Paris (75)", 30), ("Marseille", "13", "Bouches-du-Rhône (13)", 10),
    ("Lyon", "69", "Rhône (69)", 10), ("Toulouse", "31", "Haute-Garonne (31)", 8),
    ("Nice", "06", "Alpes-Maritimes (06)", 6), ("Nantes", "44", "Loire-Atlantique (44)", 6),
    ("Montpellier", "34", "Hérault (34)", 5), ("Strasbourg", "67", "Bas-Rhin (67)", 5),
    ("Bordeaux", "33", "Gironde (33)", 6), ("Lille", "59", "Nord (59)", 6),
    ("Rennes", "35", "Ille-et-Vilaine (35)", 4), ("Reims", "51", "Marne (51)", 3),
    ("Saint-Étienne", "42", "Loire (42)", 3), ("Le Havre", "76", "Seine-Maritime (76)", 2),
    ("Toulon", "83", "Var (83)", 2), ("Grenoble", "38", "Isère (38)", 4),
    ("Dijon", "21", "Côte-d'Or (21)", 2), ("Angers", "49", "Maine-et-Loire (49)", 2),
    ("Nîmes", "30", "Gard (30)", 2), ("Clermont-Ferrand", "63", "Puy-de-Dôme (63)", 3),
    ("Besançon", "25", "Doubs (25)", 2), ("Orléans", "45", "Loiret (45)", 2),
    ("Rouen", "76", "Seine-Maritime (76)", 3), ("Caen", "14", "Calvados (14)", 2),
    ("Nancy", "54", "Meurthe-et-Moselle (54)", 2), ("Poitiers", "86", "Vienne (86)", 2),
    ("Béziers", "34", "Hérault (34)", 1), ("Pointe-à-Pitre", "971", "Guadeloupe (971)", 1),
    ("Saint-Denis", "974", "La Réunion (974)", 2), ("Ajaccio", "20", "Corse-du-Sud (2A)", 1),
    ("Évry-Courcouronnes", "91", "Essonne (91)", 2), ("Créteil", "94", "Val-de-Marne (94)", 2),
    ("Châlons-en-Champagne", "51", "Marne (51)", 1), ("Aix-en-Provence", "13",
                                                     "Bouches-du-Rhône (13)", 2),
    ("Brest", "29", "Finistère (29)", 2), ("Limoges", "87", "Haute-Vienne (87)", 2),
    ("Tours", "37", "Indre-et-Loire (37)", 2), ("Amiens", "80", "Somme (80)", 2),
    ("Perpignan", "66", "Pyrénées-Orientales (66)", 2), ("Metz", "57", "Moselle (57)", 2),
    ("Pau", "64", "Pyrénées-Atlantiques (64)", 1), ("Bayonne", "64",
                                                   "Pyrénées-Atlantiques (64)", 1),
    ("La Rochelle", "17", "Charente-Maritime (17)", 1), ("Annecy", "74", "Haute-Savoie (74)", 1),
    ("Vénissieux", "69", "Rhône (69)", 1), ("Villeurbanne", "69", "Rhône (69)", 2),
)  # fmt: skip
STREETS = (
    "rue de la République", "avenue Jean Jaurès", "boulevard Victor Hugo", "rue Pasteur",
    "place de l'Église", "rue du Général de Gaulle", "avenue de la Gare", "rue des Écoles",
    "chemin des Vignes", "rue Émile Zola", "quai Saint-Antoine", "allée des Tilleuls",
    "rue de l'Hôpital", "boulevard Gambetta", "impasse des Lilas", "route de Grenoble",
)  # fmt: skip
STRUCTURES = (
    "Centre hospitalier", "CHU", "Clinique Saint-Joseph", "Clinique du Parc",
    "Maison de santé pluriprofessionnelle", "Centre de santé", "Pharmacie du Marché",
    "Pharmacie de la Gare", "Cabinet médical", "Groupe hospitalier", "Hôpital privé",
    "Laboratoire de biologie médicale", "EHPAD Les Glycines", "Centre de radiologie",
)  # fmt: skip
SERVICES = (
    "Cardiologie", "Urgences", "Pédiatrie", "Médecine interne", "Oncologie", "Maternité",
    "Réanimation", "Chirurgie digestive", "Gériatrie", "Psychiatrie adulte", "Imagerie",
    "Secrétariat médical", "Pharmacie à usage intérieur", "Néphrologie-dialyse",
)  # fmt: skip
OPERATORS = ("medecin.mssante.fr", "pharmacien.mssante.fr", "infirmier.mssante.fr",
             "ch-exemple.mssante.fr", "chu-exemple.mssante.fr", "ght.mssante.fr",
             "masante.mssante.fr")  # fmt: skip


def _ascii(text: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "Oe"))
    return "".join(c for c in folded.encode("ascii", "ignore").decode() if c.isalnum()).lower()


@dataclass
class Row:
    values: dict[str, str]

    def line(self, order: list[str]) -> str:
        return "|".join(self.values.get(name, "") for name in order)


def rows(count: int, seed: int = 18) -> Iterator[Row]:
    """``count`` valid rows: about 80 % personal mailboxes of practitioners (RPPS), the rest
    organisational (a structure's service)."""
    rng = random.Random(seed)
    profession_weights = [p[2] for p in PROFESSIONS]
    city_weights = [c[3] for c in CITIES]
    for number in range(count):
        profession_code, profession, _w, specialties = rng.choices(PROFESSIONS, profession_weights)[
            0
        ]
        city, department_prefix, department, _cw = rng.choices(CITIES, city_weights)[0]
        postcode = (department_prefix + f"{rng.randrange(0, 1000):03d}")[:5].ljust(5, "0")
        if department_prefix in ("75", "69", "13") and rng.random() < 0.9:
            postcode = department_prefix + f"0{rng.randrange(1, 21):02d}"
        structure = rng.choice(STRUCTURES)
        if structure in ("Centre hospitalier", "CHU", "Groupe hospitalier", "Hôpital privé"):
            structure = f"{structure} de {city}"
        street = f"{rng.randrange(1, 200)} {rng.choice(STREETS)}"
        personal = rng.random() < 0.8
        values = {
            "Type de BAL": "PER" if personal else "ORG",
            "Type identifiant structure": "1",
            "Identification Structure": f"1{rng.randrange(10**8, 10**9)}",
            "Code catégorie professionnelle": "C",
            "Libellé catégorie professionnelle": "Civil",
            "Dématérialisation": rng.choice(("OUI", "NON", "")),
            "Raison sociale / Enseigne": structure,
            "Complément destinataire": rng.choice(("", "", "Bâtiment A", "2e étage")),
            "Numéro et libellé de voie": street,
            "Lieu-dit": "",
            "Code postal": postcode,
            "Commune": city,
            "Département": department,
            "Pays": "France",
        }
        if personal:
            last = rng.choice(LAST_NAMES)
            if rng.random() < 0.05:
                last = f"{last}-{rng.choice(LAST_NAMES)}"
            first = rng.choice(FIRST_NAMES)
            rpps = f"1{number:010d}"
            specialty_code, specialty = rng.choice(specialties)
            local = f"{_ascii(first)}.{_ascii(last)}"
            if number % 7 == 0:
                local += str(number % 1000)
            values.update({
                "Adresse BAL": f"{local}@{rng.choice(OPERATORS)}",
                "Type Identifiant PP": "8",
                "Identifiant PP": rpps,
                "Identification nationale PP": f"8{rpps}",
                "Service de rattachement": "",
                "Civilité d'exercice": "Dr" if profession_code in ("10", "21", "40") else "",
                "Nom d'exercice": last.upper() if rng.random() < 0.5 else last,
                "Prénom d'exercice": first,
                "Code profession": profession_code,
                "Libellé profession": profession,
                "Code savoir-faire": specialty_code,
                "Libellé savoir-faire": specialty,
            })  # fmt: skip
        else:
            service = rng.choice(SERVICES)
            values.update(
                {
                    "Adresse BAL": f"{_ascii(service)}.{number}@{rng.choice(OPERATORS)}",
                    "Service de rattachement": service,
                }
            )
        yield Row(values)


def hostile_lines(width: int) -> list[tuple[bytes, str]]:
    """Lines no import may take, each with what is wrong (the test reads the reason)."""
    good = ["x"] * width
    return [
        (("|".join(good[:-2])).encode(), "colonnes"),  # too few columns
        (("|".join([*good, "en trop"])).encode(), "colonnes"),  # too many
        (b"ORG|bad\xff\xfeutf8@medecin.mssante.fr" + b"|x" * (width - 2), "UTF-8"),
        # a 10 kB field
        (
            "|".join(["PER", "long@medecin.mssante.fr", "A" * 10_240, *good[3:]]).encode(),
            "trop long",
        ),
        ("|".join(["PER", "cr@medecin.mssante.fr", "a\rb", *good[3:]]).encode(), "contrôle"),
        (b"", "vide"),
    ]


def quoted_row(order: list[str]) -> str:
    """A valid row with quotes in its values (the format does not quote: they are text)."""
    values = {name: "" for name in order}
    values.update({
        "Type de BAL": "ORG", "Adresse BAL": "accueil@clinique-guillemets.mssante.fr",
        "Raison sociale / Enseigne": 'Clinique "Les Tilleuls"', "Service de rattachement":
        "Accueil 'principal'", "Commune": "Quimper", "Code postal": "29000",
    })  # fmt: skip
    return "|".join(values[name] for name in order)


def write(
    path: Path, count: int, *, seed: int = 18, hostile_every: int = 0, shuffle: bool = False
) -> list[tuple[int, str]]:
    """Write ``count`` valid rows (plus hostile lines every ``hostile_every`` rows, plus a
    quoted row) to ``path``, CRLF line ends. Returns (line number, expected reason) of the
    hostile lines."""
    order = list(HEADER)
    if shuffle:
        random.Random(seed).shuffle(order)
    hostile = hostile_lines(len(order))
    expected: list[tuple[int, str]] = []
    line = 1
    with path.open("wb") as out:
        out.write("|".join(order).encode() + b"\r\n")
        out.write(quoted_row(order).encode() + b"\r\n")
        line += 1
        for number, row in enumerate(rows(count, seed)):
            if hostile_every and number % hostile_every == hostile_every - 1:
                raw, reason = hostile[(number // hostile_every) % len(hostile)]
                line += 1
                out.write(raw + b"\r\n")
                expected.append((line, reason))
            line += 1
            out.write(row.line(order).encode() + b"\r\n")
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=535_000)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--hostile-every", type=int, default=5000)
    parser.add_argument("--shuffle-columns", action="store_true")
    args = parser.parse_args()
    bad = write(args.out, args.n, seed=args.seed, hostile_every=args.hostile_every,
                shuffle=args.shuffle_columns)  # fmt: skip
    print(f"{args.out}: {args.n + 1} rows, {len(bad)} hostile lines, "
          f"{args.out.stat().st_size / 1e6:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
