"""Dutch text analysis, the one function used for indexing *and* for querying.

``analyze(text)`` turns free Dutch text into index terms:

1. unicode word tokens (``\\w+``: letters, digits and ``_``; everything else separates words),
2. lowercase (``str.lower``),
3. diacritic folding: NFKD decomposition with combining marks dropped (é→e, ë→e, ï→i),
4. tokens longer than :data:`MAX_TOKEN_CHARS` are dropped (base64 blobs, OCR noise),
5. the Snowball *Porter* Dutch stemmer (PyStemmer ``dutch_porter``).

Why ``dutch_porter`` and not tantivy's built-in ``dutch`` stemmer: tantivy 0.27 ships the
Snowball 3.x Dutch stemmer (a Kraaij-Pohlmann hybrid) while OpenSearch's ``dutch`` analyzer,
our production backend, uses the classic Snowball Porter Dutch stemmer. They disagree on
common archive words (``vergunning`` → ``vergun`` vs ``vergunn``; Snowball 3.x stems
``gemeente`` and ``menen`` both to ``meen``). Stemming here in Python with the classic
algorithm keeps the embedded and production backends giving the same answers
(``research/search/REPORT.md`` §5). Not emulated: OpenSearch's stop-word list and Lucene's
``stemmer_override`` dictionary (``kind`` → ``kinder``); compounds are not split.

Invariants:
    * Indexing and querying go through :func:`analyze`; a backend never stems again. The
      tantivy backend indexes the output with a whitespace tokenizer (see
      :mod:`search._tantivy_schema`); OpenSearch will index it with a ``whitespace`` analyzer.
    * Output terms are lowercase, accent-free, non-empty and contain no whitespace.
    * Changing this pipeline changes every term: bump :data:`ANALYSIS_VERSION`, which makes
      existing indexes refuse to open until they are rebuilt (``kluis reindex``).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from itertools import chain

import Stemmer

__all__ = [
    "ANALYSIS_VERSION",
    "MAX_TOKEN_CHARS",
    "STEMMER_ALGORITHM",
    "analyze",
    "analyzed",
    "fold",
]

ANALYSIS_VERSION = "nl-porter-2"
# 2: terms of characters that decompose to capitals are lowercase too (fold).
"""Identifies the term pipeline; stored with every index and checked when it is opened."""

STEMMER_ALGORITHM = "dutch_porter"
MAX_TOKEN_CHARS = 64
"""Longer tokens are dropped. Dutch compounds stay well below this (33 characters for
``arbeidsongeschiktheidsverzekering``)."""

_WORD = re.compile(r"\w+")
_local = threading.local()
"""PyStemmer stemmers keep a cache and are not thread-safe: one stemmer per thread, and
one memo of stems per thread next to it."""
STEM_MEMO_WORDS = 200_000
"""Words and whitespace tokens (``vergunning,``) whose terms a thread remembers (a few tens
of MB at most). Dutch vocabulary is Zipfian: after a few thousand documents nearly every
token of the next one is known, and a dict lookup per token is about five times cheaper than
handing the words to the stemmer (``bench/search.py``). When full the memo starts afresh
(simpler than LRU, as effective)."""


def _stemmer() -> Stemmer.Stemmer:
    stemmer: Stemmer.Stemmer | None = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = Stemmer.Stemmer(STEMMER_ALGORITHM)
        _local.stemmer = stemmer
    return stemmer


def _memo() -> dict[str, str]:
    """word or whitespace token (as found in the lowercased text) → its index terms joined
    by spaces: usually one, ``""`` for one that yields none (too long, an owner number, only
    punctuation), several when folding or punctuation splits it (``⑴`` → ``1``, ``a.b``).
    Only ``str`` inside, so the garbage collector never traverses it (a dict holding tuples
    would be tracked and walked by every full collection). This thread's own dict, so no
    lock is needed."""
    memo: dict[str, str] | None = getattr(_local, "memo", None)
    if memo is None or len(memo) > STEM_MEMO_WORDS:
        memo = {}
        _local.memo = memo
    return memo


def fold(text: str) -> str:
    """Lowercase ``text`` and strip diacritics (``Café Ëlla`` → ``cafe ella``)."""
    folded = _strip_marks(text.lower())
    # Some characters decompose to capitals (U+1D2C MODIFIER LETTER CAPITAL A → A, about
    # 600 code points): lowercase again. Two passes reach a fixed point for every code
    # point (tests/unit/search/test_analysis.py checks them all).
    return folded if folded.islower() or folded == folded.lower() else _strip_marks(folded.lower())


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_OWNER_NUMBER = re.compile(r"^\d{10,11}$")


def _learn(unknown: set[str], memo: dict[str, str]) -> None:
    """Put the terms of the ``unknown`` words into ``memo``."""
    # Folding only for the few words with accents or other scripts; it can turn one word
    # into several (``⑴`` → ``(1)``): split again.
    parts = {w: (w,) if w.isascii() else tuple(_WORD.findall(fold(w))) for w in unknown}
    # Owner numbers printed in a document (10 or 11 digits) must not become index terms:
    # the index never holds a raw national register or enterprise number.
    wanted = [
        p
        for p in set(chain.from_iterable(parts.values()))
        if len(p) <= MAX_TOKEN_CHARS and not (p.isdigit() and _OWNER_NUMBER.match(p))
    ]
    stems = dict(zip(wanted, _stemmer().stemWords(wanted), strict=True))
    for word, pieces in parts.items():
        memo[word] = " ".join(stem for stem in map(stems.get, pieces) if stem)


def _learn_tokens(unknown: set[str], memo: dict[str, str]) -> None:
    """Put the terms of the ``unknown`` whitespace tokens into ``memo``: those of their
    ``\\w+`` words (learnt first where new), space-joined."""
    words = {token: _WORD.findall(token) for token in unknown}
    new = set(chain.from_iterable(words.values())).difference(memo)
    if new:
        _learn(new, memo)
    for token, found in words.items():
        memo[token] = " ".join(filter(None, map(memo.__getitem__, found)))


def analyze(text: str) -> list[str]:
    """Return the index terms of ``text``, in order (duplicates kept, for positions).

    ``analyze("De vergunningen voor het Café")`` → ``["de", "vergunn", "voor", "het", "caf"]``.
    Never raises for any ``str``; returns ``[]`` when ``text`` has no words.
    """
    return analyzed(text).split()  # terms never contain whitespace


def analyzed(text: str) -> str:
    """``" ".join(analyze(text))``, without the intermediate list (indexing uses this).

    The lowercased text is split on whitespace (``str.split``, about half the cost of a
    ``\\w+`` ``findall``) and each *token* (``vergunning,`` ``(2024)``) is looked up in the
    memo, which maps it to the terms of its ``\\w+`` words. No word contains whitespace, so
    the words of the tokens, in order, are exactly the words of the text: the same terms.
    Nearly every document has a token this thread has not seen (a reference number, a
    date), so the unknown ones are found first with one set difference, not by a lookup
    that fails (measured: set first ~66, findall per word ~85 µs for a 2 KB text).
    """
    tokens = text.lower().split()
    memo = _memo()
    unknown = set(tokens).difference(memo)
    if unknown:
        _learn_tokens(unknown, memo)
    return " ".join(filter(None, map(memo.__getitem__, tokens)))
