#!/usr/bin/env python3
# ruff: noqa: E501, F841, SIM115
# Copied unchanged (bar formatting) from research/search/gen_corpus.py: the corpus of the
# embedded-backend study, so bench/search.py numbers are comparable with REPORT.md.
# Needs the `bench` extra (wordfreq).
"""Deterministic generator of synthetic but realistic Dutch (Flemish) archive documents.

Each output line (JSONL) is one document:
  seq, doc_id, owner_id, owner_type, agency_id, agency, doc_type_id, doc_type,
  issue_date, year, archived_at, retention_class, retention_end (null = permanent),
  legal_hold, title, body, pages

Body text (~300 words, normal(300, 70) clipped to 120..700) is a letter/attest/decision
skeleton (header, salutation, closing) filled with sentences whose words are sampled by
frequency from the Dutch word-frequency list shipped inside the PyPI package `wordfreq`
(`get_frequency_dict('nl', 'best')`, top 30,000 plain words), mixed with the domain
vocabulary of the document type (~12 % of slots) and administrative terms (~3 %).

Owners: 90 % of documents belong to one of 1,000,000 citizens (rank drawn from a bounded
power law, exponent 0.6, mapped to an id through a fixed bijection so popular ids are
scattered), 10 % to one of 100,000 enterprises (exponent 0.9). Agencies (300) and document
types (40) are Zipf-weighted. Issue dates cover 2015-01-01..2024-12-31 with volume growing
over the years and few weekend dates.

Determinism: document i only depends on (--seed, i) (own random.Random seeded by a string),
so any slice [start, start+n) is reproducible and the output is identical for any
--workers value. Usage:

  python gen_corpus.py --n 1000000 --out corpus.jsonl [--seed 42] [--start 0] [--workers 2]
"""

import argparse
import datetime as dt
import json
import multiprocessing as mp
import random
import re
import sys
import uuid

N_CITIZENS = 1_000_000
N_ENTERPRISES = 100_000
VOCAB_SIZE = 30_000

# ---------------------------------------------------------------- reference data
AGENCIES_VLAAMS = [
    "Agentschap Opgroeien",
    "Agentschap Wonen-Vlaanderen",
    "Vlaamse Belastingdienst",
    "Departement Omgeving",
    "Agentschap Integratie en Inburgering",
    "Departement Onderwijs en Vorming",
    "AHOVOKS",
    "Agentschap Vlaamse Sociale Bescherming",
    "OVAM",
    "VDAB",
    "Agentschap Innoveren en Ondernemen",
    "Digitaal Vlaanderen",
    "Departement Mobiliteit en Openbare Werken",
    "Agentschap Wegen en Verkeer",
    "Vlaams Energie- en Klimaatagentschap",
    "Departement Zorg",
    "Departement Cultuur, Jeugd en Media",
    "Sport Vlaanderen",
    "Agentschap Onroerend Erfgoed",
    "Agentschap Natuur en Bos",
    "Vlaamse Milieumaatschappij",
    "Departement Landbouw en Visserij",
    "Agentschap Landbouw en Zeevisserij",
    "Departement Werk en Sociale Economie",
    "Agentschap Binnenlands Bestuur",
    "Agentschap Facilitair Bedrijf",
    "Kind en Gezin",
    "Vlaams Agentschap Zorg en Gezondheid",
    "Departement Kanselarij en Buitenlandse Zaken",
    "Agentschap Uitvoeren",
]
MUNICIPALITIES = [
    "Aalst",
    "Aalter",
    "Aarschot",
    "Antwerpen",
    "Asse",
    "Beveren",
    "Bilzen",
    "Blankenberge",
    "Boom",
    "Bornem",
    "Brasschaat",
    "Brugge",
    "Denderleeuw",
    "Dendermonde",
    "Deinze",
    "Diest",
    "Diksmuide",
    "Dilbeek",
    "Eeklo",
    "Evergem",
    "Geel",
    "Genk",
    "Gent",
    "Geraardsbergen",
    "Gistel",
    "Grimbergen",
    "Halle",
    "Hamme",
    "Harelbeke",
    "Hasselt",
    "Heist-op-den-Berg",
    "Herentals",
    "Herzele",
    "Hoogstraten",
    "Houthalen-Helchteren",
    "Ieper",
    "Izegem",
    "Kalmthout",
    "Kapellen",
    "Kasterlee",
    "Knokke-Heist",
    "Kortrijk",
    "Kontich",
    "Lanaken",
    "Leuven",
    "Lier",
    "Lokeren",
    "Lommel",
    "Maasmechelen",
    "Maldegem",
    "Mechelen",
    "Menen",
    "Merelbeke",
    "Mol",
    "Mortsel",
    "Ninove",
    "Oostende",
    "Oudenaarde",
    "Overijse",
    "Pelt",
    "Poperinge",
    "Roeselare",
    "Ronse",
    "Schoten",
    "Sint-Niklaas",
    "Sint-Truiden",
    "Tielt",
    "Tienen",
    "Tongeren",
    "Torhout",
    "Turnhout",
    "Vilvoorde",
    "Waregem",
    "Wetteren",
    "Wevelgem",
    "Zaventem",
    "Zele",
    "Zelzate",
    "Zottegem",
    "Zonhoven",
    "Zwevegem",
    "Zwijndrecht",
    "Beringen",
    "Bree",
    "Dilsen-Stokkem",
    "Hamont-Achel",
    "Heusden-Zolder",
    "Lummen",
    "Maaseik",
    "Peer",
    "Tessenderlo",
    "Balen",
    "Dessel",
    "Essen",
    "Brecht",
    "Malle",
    "Zoersel",
    "Ranst",
    "Edegem",
    "Wijnegem",
    "Wommelgem",
    "Boechout",
    "Hove",
    "Duffel",
    "Putte",
    "Nijlen",
    "Grobbendonk",
    "Olen",
    "Westerlo",
    "Laakdal",
    "Meerhout",
    "Herselt",
    "Hulshout",
    "Begijnendijk",
    "Tremelo",
    "Haacht",
    "Kampenhout",
    "Steenokkerzeel",
    "Machelen",
    "Wemmel",
    "Affligem",
    "Liedekerke",
    "Ternat",
    "Lennik",
    "Gooik",
    "Pepingen",
    "Beersel",
    "Drogenbos",
    "Sint-Genesius-Rode",
    "Hoeilaart",
    "Tervuren",
    "Kortenberg",
    "Herent",
    "Rotselaar",
    "Holsbeek",
    "Lubbeek",
    "Bierbeek",
    "Oud-Heverlee",
    "Huldenberg",
    "Boutersem",
    "Hoegaarden",
    "Linter",
    "Zoutleeuw",
    "Landen",
    "Geetbets",
    "Glabbeek",
    "Kortenaken",
    "Scherpenheuvel-Zichem",
    "Bekkevoort",
    "Tielt-Winge",
    "Keerbergen",
    "Bonheiden",
    "Sint-Katelijne-Waver",
    "Willebroek",
    "Puurs-Sint-Amands",
    "Kruibeke",
    "Temse",
    "Stekene",
    "Sint-Gillis-Waas",
    "Moerbeke",
    "Wachtebeke",
    "Lochristi",
    "Destelbergen",
    "Melle",
    "Oosterzele",
    "Lede",
    "Erpe-Mere",
    "Haaltert",
    "Lebbeke",
    "Buggenhout",
    "Berlare",
    "Laarne",
    "Wichelen",
]

# (name, retention class, domain vocabulary)
DOC_TYPES = [
    (
        "Attest gezinsbijslag",
        "R10Y",
        "groeipakket gezinsbijslag kinderbijslag kind kinderen uitbetaling bedrag maandelijks rechthebbende attest",
    ),
    (
        "Zwangerschapsattest",
        "R10Y",
        "zwangerschapsattest zwangerschap bevalling geboortepremie startbedrag arts vroedvrouw attest vermoedelijke",
    ),
    (
        "Attest van woonst",
        "R5Y",
        "woonst hoofdverblijfplaats bevolkingsregister adres inschrijving gezinssamenstelling attest",
    ),
    (
        "Uittreksel uit het strafregister",
        "R1Y",
        "strafregister uittreksel model gedrag zeden veroordelingen attest",
    ),
    (
        "Inschrijvingsattest onderwijs",
        "R10Y",
        "inschrijving leerling school onderwijsinstelling schooljaar studierichting attest",
    ),
    (
        "Besluit omgevingsvergunning",
        "R75Y",
        "omgevingsvergunning vergunning stedenbouwkundige handelingen perceel bouwen verbouwen voorwaarden beroep besluit",
    ),
    (
        "Besluit renovatiepremie",
        "R10Y",
        "premie renovatie verbouwpremie dakisolatie facturen woning uitbetaling besluit aanvraag",
    ),
    (
        "Besluit huurpremie",
        "R10Y",
        "huurpremie huurwaarborg huurder sociale woning wachtlijst inkomen besluit",
    ),
    (
        "Besluit studietoelage",
        "R10Y",
        "studietoelage schooltoelage student hoger onderwijs inkomen gezin besluit toegekend",
    ),
    (
        "Aanslagbiljet onroerende voorheffing",
        "R10Y",
        "aanslagbiljet onroerende voorheffing kadastraal inkomen belasting betalen vervaldag",
    ),
    (
        "Aanslagbiljet verkeersbelasting",
        "R10Y",
        "verkeersbelasting voertuig nummerplaat inschrijving belasting aanslagbiljet betaling",
    ),
    (
        "Ontvangstmelding aanvraag",
        "R5Y",
        "ontvangst aanvraag ontvangstmelding dossier behandeling termijn volledig",
    ),
    (
        "Herinneringsbrief",
        "R5Y",
        "herinnering betaling openstaand bedrag termijn brief rekeningnummer",
    ),
    (
        "Ingebrekestelling",
        "R10Y",
        "ingebrekestelling verwijlintresten betaling aangetekend invordering termijn",
    ),
    (
        "Beslissing zorgbudget",
        "R10Y",
        "zorgbudget zorgnood ouderen zorgkas tegemoetkoming beslissing zorgbehoevende",
    ),
    (
        "Energieprestatiecertificaat",
        "R10Y",
        "energieprestatiecertificaat epc energiescore woning renovatieadvies certificaat energiedeskundige",
    ),
    (
        "Conformiteitsattest woning",
        "R10Y",
        "conformiteitsattest woningkwaliteit conformiteitsonderzoek verhuren woning attest gebreken",
    ),
    ("Bodemattest", "R30Y", "bodemattest bodem grond perceel verontreiniging overdracht attest"),
    ("Asbestattest", "R30Y", "asbestattest asbest inventaris gebouw bouwjaar attest"),
    ("Getuigschrift", "PERM", "getuigschrift diploma opleiding studiebewijs behaald kwalificatie"),
    (
        "Attest kinderopvang",
        "R10Y",
        "kinderopvang opvang fiscaal attest aanwezigheidsdagen kind bedrag",
    ),
    ("Erkenningsbesluit", "R30Y", "erkenning erkenningsvoorwaarden organisatie besluit geldigheid"),
    ("Subsidiebesluit", "R10Y", "subsidie subsidiebesluit project toelage voorschot saldo besluit"),
    ("Betalingsbewijs", "R5Y", "betaling betalingsbewijs bedrag gestort rekening mededeling"),
    (
        "Stedenbouwkundig uittreksel",
        "R10Y",
        "stedenbouwkundig uittreksel perceel plannen verkavelingsvergunning ruimtelijk",
    ),
    (
        "Vastgoedinformatieattest",
        "R10Y",
        "vastgoedinformatie perceel notaris verkoop informatie attest",
    ),
    ("Attest jeugdwerk", "R5Y", "jeugdwerk kamp animator jeugdbeweging attest vorming"),
    (
        "Beslissing tegemoetkoming",
        "R10Y",
        "tegemoetkoming hulp bejaarden zelfredzaamheid beslissing handicap",
    ),
    (
        "Inburgeringsattest",
        "PERM",
        "inburgering inburgeringsattest traject maatschappelijke oriëntatie nederlands attest",
    ),
    (
        "Attest Nederlandse taalkennis",
        "PERM",
        "taalkennis nederlands niveau examen taaltest attest",
    ),
    ("Attest leerlingenvervoer", "R5Y", "leerlingenvervoer busvervoer leerling school bus attest"),
    (
        "Besluit aanpassingspremie",
        "R10Y",
        "aanpassingspremie woning ouderen aanpassing premie besluit",
    ),
    (
        "Verslag plaatsbezoek",
        "R10Y",
        "plaatsbezoek verslag vaststellingen inspecteur ter plaatse controle",
    ),
    ("Proces-verbaal", "R30Y", "proces-verbaal overtreding vaststelling inbreuk verbalisant"),
    (
        "Beroepsbeslissing",
        "R30Y",
        "beroep beroepsbeslissing ontvankelijk gegrond ongegrond beroepschrift beslissing",
    ),
    ("Uitnodiging hoorzitting", "R5Y", "hoorzitting uitnodiging gehoord advocaat zitting"),
    ("Kennisgeving weigering", "R10Y", "weigering kennisgeving geweigerd motivering beroep"),
    (
        "Evenementenvergunning",
        "R5Y",
        "evenement vergunning fuif festival openbaar domein veiligheid",
    ),
    (
        "Besluit verkavelingsvergunning",
        "R75Y",
        "verkavelingsvergunning verkaveling loten perceel vergunning besluit",
    ),
    ("Aangifteformulier", "R5Y", "aangifte formulier gegevens ingevuld ondertekend bijlage"),
]
RETENTION_YEARS = {"R1Y": 1, "R5Y": 5, "R10Y": 10, "R30Y": 30, "R75Y": 75, "PERM": None}
ADMIN_TERMS = [
    "dossier",
    "aanvraag",
    "besluit",
    "beslissing",
    "attest",
    "vergunning",
    "premie",
    "termijn",
    "bijlage",
    "betaling",
    "artikel",
    "decreet",
    "regelgeving",
    "verzoek",
    "bezwaar",
    "beroep",
    "adres",
    "gegevens",
    "behandeling",
    "dienst",
    "loket",
]
SURNAMES = [
    "Peeters",
    "Janssens",
    "Maes",
    "Jacobs",
    "Mertens",
    "Willems",
    "Claes",
    "Goossens",
    "Wouters",
    "De_Smet",
    "Dubois",
    "Lambert",
    "Vermeulen",
    "Hermans",
    "Desmet",
    "Martens",
    "Claeys",
    "Pauwels",
    "Van_Damme",
    "De_Backer",
    "Coppens",
    "Verhoeven",
    "Michiels",
    "Smets",
    "Aerts",
    "Van_de_Velde",
    "Segers",
    "Lemmens",
    "Declercq",
    "Vandenberghe",
    "Verstraete",
    "Cools",
    "Moens",
    "Stevens",
    "Hendrickx",
    "Bogaert",
    "Van_Acker",
    "Devos",
    "Wuyts",
    "Dewulf",
]
FIRSTNAMES = [
    "Jan",
    "Marie",
    "Lucas",
    "Emma",
    "Noah",
    "Louise",
    "Arthur",
    "Olivia",
    "Liam",
    "Elena",
    "Jules",
    "Mila",
    "Louis",
    "Nora",
    "Adam",
    "Lina",
    "Finn",
    "Ella",
    "Vic",
    "Fien",
    "Wout",
    "Lotte",
    "Tom",
    "Sofie",
    "Pieter",
    "An",
    "Koen",
    "Els",
    "Bart",
    "Katrien",
]
FUNCTIES = [
    "dossierbeheerder",
    "afdelingshoofd",
    "administratief medewerker",
    "teamleider",
    "diensthoofd",
    "adviseur",
    "secretaris-generaal",
    "administrateur-generaal",
]
MAANDEN = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
]
YEARS = list(range(2015, 2025))
YEAR_WEIGHTS = [1.0 + 0.09 * k for k in range(10)]  # volume grows ~9 %/year

_WORD_RE = re.compile(r"[a-zà-ÿ]+(-[a-zà-ÿ]+)?")


def _agencies():
    out = list(AGENCIES_VLAAMS)
    for m in MUNICIPALITIES:
        out.append(f"Gemeente {m}")
    for m in MUNICIPALITIES:
        if len(out) >= 300:
            break
        out.append(f"OCMW {m}")
    return out[:300]


AGENCIES = _agencies()
assert len(AGENCIES) == 300 and len(DOC_TYPES) == 40


def _cum(weights):
    acc, out = 0.0, []
    for w in weights:
        acc += w
        out.append(acc)
    return out


AGENCY_CUM = _cum([1.0 / (r + 1) ** 0.9 for r in range(len(AGENCIES))])
DOCTYPE_CUM = _cum([1.0 / (r + 1) ** 0.8 for r in range(len(DOC_TYPES))])
YEAR_CUM = _cum(YEAR_WEIGHTS)
DOMAIN = [t[2].split() for t in DOC_TYPES]

_VOCAB = None


def vocab():
    """Top VOCAB_SIZE plain Dutch words with cumulative frequency weights (from wordfreq)."""
    global _VOCAB
    if _VOCAB is None:
        import wordfreq

        d = wordfreq.get_frequency_dict("nl", "best")
        items = sorted(d.items(), key=lambda x: (-x[1], x[0]))
        words, weights = [], []
        for w, f in items:
            if _WORD_RE.fullmatch(w):
                words.append(w)
                weights.append(f)
                if len(words) >= VOCAB_SIZE:
                    break
        _VOCAB = (words, _cum(weights))
    return _VOCAB


def bounded_powerlaw_rank(rng, n, s):
    """Rank in 1..n with P(r) ~ r^-s (continuous inverse-CDF approximation)."""
    u = rng.random()
    if abs(s - 1.0) < 1e-9:
        r = n**u
    else:
        a = 1.0 - s
        r = (u * (n**a - 1.0) + 1.0) ** (1.0 / a)
    return min(n, max(1, int(r)))


def owner_for(rng):
    if rng.random() < 0.90:
        rank = bounded_powerlaw_rank(rng, N_CITIZENS, 0.6)
        idx = (rank * 7_919_311 + 12_345) % N_CITIZENS  # bijection (gcd(a, n) = 1)
        return f"C{idx:07d}", "citizen"
    rank = bounded_powerlaw_rank(rng, N_ENTERPRISES, 0.9)
    idx = (rank * 48_271 + 777) % N_ENTERPRISES
    return f"E0{400_000_000 + idx * 37:09d}", "enterprise"


def sentence(rng, words, cum, domain, lo=6, hi=18):
    n = rng.randint(lo, hi)
    toks = rng.choices(words, cum_weights=cum, k=n)
    for k in range(n):
        r = rng.random()
        if r < 0.12:
            toks[k] = rng.choice(domain)
        elif r < 0.15:
            toks[k] = rng.choice(ADMIN_TERMS)
    s = " ".join(toks)
    return s[0].upper() + s[1:] + rng.choice(".....?;:")


def make_doc(seed, i):
    words, cum = vocab()
    rng = random.Random(f"{seed}:{i}")
    owner_id, owner_type = owner_for(rng)
    a = rng.choices(range(len(AGENCIES)), cum_weights=AGENCY_CUM)[0]
    t = rng.choices(range(len(DOC_TYPES)), cum_weights=DOCTYPE_CUM)[0]
    tname, rclass, _ = DOC_TYPES[t]
    domain = DOMAIN[t]
    year = rng.choices(YEARS, cum_weights=YEAR_CUM)[0]
    while True:
        d = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(366 if year % 4 == 0 else 365))
        if d.weekday() < 5 or rng.random() < 0.1:
            break
    archived = dt.datetime(
        d.year, d.month, d.day, rng.randrange(7, 20), rng.randrange(60), rng.randrange(60)
    ) + dt.timedelta(days=rng.choice([0, 0, 0, 1, 2, 7]))
    ry = RETENTION_YEARS[rclass]
    retention_end = None
    if ry is not None:
        try:
            retention_end = d.replace(year=d.year + ry)
        except ValueError:  # 29 February
            retention_end = d.replace(year=d.year + ry, day=28)
    legal_hold = rng.random() < 0.01
    surname = rng.choice(SURNAMES).replace("_", " ")
    first = rng.choice(FIRSTNAMES)
    dossier = f"{d.year}/{rng.randrange(10**6):06d}"
    city = rng.choice(MUNICIPALITIES)
    topic = " ".join(rng.sample(domain, k=min(2, len(domain))))
    title = f"{tname} {dossier} {topic}"
    target = max(120, min(700, int(rng.gauss(300, 70))))
    parts = [
        f"{AGENCIES[a]}",
        f"Ons kenmerk: {dossier}",
        f"Datum: {d.day} {MAANDEN[d.month - 1]} {d.year}",
        f"Betreft: {tname.lower()} {topic}",
        f"Geachte {rng.choice(['heer', 'mevrouw', 'heer, mevrouw'])} {surname},",
        f"Wij hebben uw {rng.choice(domain)} van {rng.randint(1, 28)} "
        f"{MAANDEN[rng.randrange(12)]} goed ontvangen en behandeld.",
    ]
    count = sum(len(p.split()) for p in parts)
    while count < target - 20:
        s = sentence(rng, words, cum, domain)
        if rng.random() < 0.08:
            s += f" ({city}, {rng.choice(SURNAMES).replace('_', ' ')} {rng.randint(1, 250)})"
        parts.append(s)
        count += len(s.split())
    parts += [
        f"Tegen deze beslissing kunt u binnen {rng.choice([30, 45, 60])} dagen beroep aantekenen.",
        "Met vriendelijke groeten,",
        f"{rng.choice(FIRSTNAMES)} {rng.choice(SURNAMES).replace('_', ' ')}, {rng.choice(FUNCTIES)}",
    ]
    body = "\n".join(parts)
    return {
        "seq": i,
        "doc_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "owner_id": owner_id,
        "owner_type": owner_type,
        "agency_id": f"AG{a:03d}",
        "agency": AGENCIES[a],
        "doc_type_id": f"DT{t:02d}",
        "doc_type": tname,
        "issue_date": d.isoformat(),
        "year": d.year,
        "archived_at": archived.isoformat(timespec="seconds"),
        "retention_class": rclass,
        "retention_end": retention_end.isoformat() if retention_end else None,
        "legal_hold": legal_hold,
        "title": title,
        "body": body,
        "pages": max(1, int(rng.expovariate(0.5)) + 1),
    }


def _chunk(args):
    seed, lo, hi = args
    return "".join(json.dumps(make_doc(seed, i), ensure_ascii=False) + "\n" for i in range(lo, hi))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="-")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=5_000)
    a = ap.parse_args(argv)
    jobs = [
        (a.seed, lo, min(lo + a.chunk, a.start + a.n))
        for lo in range(a.start, a.start + a.n, a.chunk)
    ]
    out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")
    vocab()
    if a.workers > 1:
        with mp.Pool(a.workers) as pool:
            for text in pool.imap(_chunk, jobs):
                out.write(text)
    else:
        for j in jobs:
            out.write(_chunk(j))
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
