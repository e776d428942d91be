from __future__ import annotations

import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import pytest
import Stemmer
from hypothesis import given, settings
from hypothesis import strategies as st

from search import analysis
from search.analysis import MAX_TOKEN_CHARS, analyze, fold


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("vergunning", "vergunningen"),
        ("besluit", "besluiten"),
        ("attest", "attesten"),
        ("cafe", "café"),
        ("geïnformeerd", "geinformeerd"),
        ("beslissing", "beslissingen"),
    ],
)
def test_inflections_and_accents_share_one_term(a: str, b: str) -> None:
    assert analyze(a) == analyze(b)
    assert len(analyze(a)) == 1


def test_porter_dutch_stems_as_opensearch_does() -> None:
    # Classic Snowball Porter Dutch (OpenSearch `dutch`), not tantivy's Snowball 3.x `dutch`
    # (which gives vergun / meen / woon).
    assert analyze("vergunningen gemeente woningen") == ["vergunn", "gemeent", "woning"]
    assert analyze("gemeente") != analyze("menen")


def test_tokens_are_unicode_words_lowercased_folded_in_order() -> None:
    assert analyze("Het CAFÉ, in Sint-Niklaas; 2024!") == [
        "het",
        "caf",
        "in",
        "sint",
        "niklas",
        "2024",
    ]
    assert analyze("één Ελλάδα") == ["een", "ελλαδα"]
    assert analyze("") == []
    assert analyze(" \n\t?!") == []


def test_overlong_tokens_are_dropped() -> None:
    assert analyze("a" * (MAX_TOKEN_CHARS + 1) + " attest") == ["attest"]
    assert analyze("b" * MAX_TOKEN_CHARS) != []


def test_fold() -> None:
    assert fold("Café Ëlla Ïjs ﬁets") == "cafe ella ijs fiets"


def test_every_code_point_folds_to_lowercase_without_marks() -> None:
    every = " ".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    folded = fold(every)
    assert folded == folded.lower()
    assert not any(unicodedata.combining(ch) for ch in folded)


def test_characters_that_decompose_to_capitals_give_lowercase_terms() -> None:
    # U+1D2C MODIFIER LETTER CAPITAL A, U+03D2 GREEK UPSILON WITH HOOK SYMBOL, U+2124 ℤ
    assert analyze("\u1d2cb \u03d2 \u2124") == ["ab", "\u03c5", "z"]


def test_terms_never_contain_whitespace_and_never_empty() -> None:
    text = "Geachte  heer,\u00a0uw\u2003aanvraag\r\nis ontvangen_vandaag."
    terms = analyze(text)
    assert terms and all(t and not any(c.isspace() for c in t) for t in terms)


def test_is_thread_safe() -> None:
    words = " ".join(["vergunningen", "besluiten", "café"] * 200)
    expected = analyze(words)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(analyze, [words] * 64))
    assert all(r == expected for r in results)


def test_owner_numbers_never_become_terms() -> None:
    terms = analyze("Rijksregisternummer 85073003328, ondernemingsnummer 0203201340, jaar 2026")
    assert "85073003328" not in terms
    assert "0203201340" not in terms
    assert "2026" in terms


def test_the_stem_memo_never_changes_terms_also_when_it_starts_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tiny memo overflows many times below; every answer must still be the stemmer's own,
    # and words that yield no term (owner numbers, overlong tokens) stay without one.
    monkeypatch.setattr(analysis, "STEM_MEMO_WORDS", 5)
    stemmer = Stemmer.Stemmer(analysis.STEMMER_ALGORITHM)
    vocabulary = ["vergunningen", "besluiten", "woningen", "aanvragen", "gemeenten", "attesten"]
    for round_ in range(20):
        words = vocabulary[round_ % 3 :] + ["85073003328", "z" * (MAX_TOKEN_CHARS + 1)]
        expected = stemmer.stemWords(vocabulary[round_ % 3 :])
        assert analyze(" ".join(words + words)) == expected + expected


def test_remembered_words_give_the_same_terms_as_the_first_time() -> None:
    # The memo maps each word as found (accented, or folding into several words) to its
    # terms; a second analysis of the same words comes from the memo and must not differ.
    text = "Café ⑴ coöperatie ½ 85073003328 vergunningen " + "ë" * 70 + " Straße"
    first = analyze(text)
    assert first == ["caf", "1", "cooperatie", "1", "2", "vergunn", "straß"]
    assert analyze(text) == first
    assert analysis.analyzed(text) == " ".join(first)


def _word_by_word(text: str) -> str:
    """The terms of ``text`` from each ``\\w+`` word of the lowercased text on its own (the
    definition the token memo of :func:`analysis.analyzed` must agree with)."""
    words = re.findall(r"\w+", text.lower())
    return " ".join(filter(None, (analysis.analyzed(w) for w in words)))


@pytest.mark.parametrize(
    "text",
    [
        "Vergunning, (vergunningen) en besluit.besluiten; café-ëlla",
        "ΟΔΟΣ ΟΔΟΣ. a\u00a0b\u2003c\x1fd e_f 85073003328, 12/03/2024 ⑴⑵ ½",
        "a.b.c ...  --  \t\n vergunning,vergunning",
        "x" * (MAX_TOKEN_CHARS + 1) + ",vergunning " + "İstanbul Straße STRASSE",
    ],
)
def test_tokens_give_the_terms_of_their_words(text: str) -> None:
    first = analysis.analyzed(text)  # learns the tokens
    assert first == _word_by_word(text)
    assert analysis.analyzed(text) == first  # from the memo


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"abéË .,;-_(\u00a0\u2003\x1f1⑴Σς", "ning", "İ"])).map("".join))
def test_tokens_give_the_terms_of_their_words_for_any_text(text: str) -> None:
    assert analysis.analyzed(text) == _word_by_word(text)
