"""The lexical (full-text) side of pgbert search: Japanese segmentation for PostgreSQL text search.

PostgreSQL has no parser for Japanese: its parsers split on spaces and punctuation, so a Japanese
sentence becomes one or two giant "words" that never match a query. pgbert segments Japanese here,
in Python, with SudachiPy (dictionary: sudachidict-core) and hands PostgreSQL finished lexemes as a
tsvector / tsquery literal, which PostgreSQL reads verbatim (a cast does no further analysis).
Every other language is left to PostgreSQL's own text search configurations.

The contract with SQL, for a table whose lexical config is `cfg` ('japanese', 'auto', or the name
of a PostgreSQL text search config) and whose non-Japanese rows use PostgreSQL config `fallback`:

    documents:  coalesce(to_tsvector_text(body, cfg)::tsvector, to_tsvector(fallback, body))
    queries:    to_tsquery_text(q, cfg) is None  -> PostgreSQL analyses q with `fallback`
                otherwise                        -> nullif(to_tsquery_text(q, cfg), '')::tsquery

to_tsvector_text / to_tsquery_text return None when the text is not theirs to analyse (cfg is a
PostgreSQL config, or 'auto' and the text is not Japanese); resolve_config says which config a
text gets. A query without lexemes (empty, punctuation only) gives '': nullif(…, '')::tsquery is
then NULL and `tsv @@ NULL` matches no row (''::tsquery also matches nothing, but with a NOTICE).
The tsquery ORs the query's lexemes: rank the matches (ts_rank, or BM25 over the GIN matches —
bench/lexical_study.py measured both); an AND query finds almost nothing for a natural query.

What is indexed (choices measured in bench/lexical_study.py on Debian's Japanese package
descriptions): Sudachi's normalized form (書きました -> 書く, ｻｰﾊﾞ/サーバ -> サーバー, ＡＢＣ -> abc)
in split mode B (middle units: プロキシサーバー -> プロキシ, サーバー), NFKC-normalised and
lowercased; only content words (nouns, verbs, adjectives, adverbs, affixes — not particles,
auxiliaries, pronouns, conjunctions or light verbs like する/ある), never punctuation, symbols or
whitespace. Two additions at the same position as the word: an unknown katakana compound also gives
the dictionary nouns inside it (コマンドラインオプションパーサ -> コマンドライン, オプション), and in
documents (not queries) an ASCII word that Sudachi reads as katakana ("game" -> ゲーム) also gives
its own spelling, so that queries analysed by PostgreSQL ('auto' tables) find it. Positions
count every word, kept or filtered out (as PostgreSQL counts stopwords), but not punctuation.

Bounds: analysis reads at most MAX_CHARS characters of a text (a search query may have at most
MAX_QUERY_CHARS: sql_api refuses longer ones); Sudachi refuses inputs over 49,149 bytes, so text is fed
to it in chunks of CHUNK_BYTES cut at line and sentence ends. Splitting unknown katakana words looks up
every substring of at most MAX_NOUN_CHARS characters, and at most SPLIT_BUDGET lookups per text (then
the words stay whole): 1,600 random 64-character katakana words took 13 s to split before, one call
that no cancel could stop. The caller's check() (a cancel point) runs between Sudachi chunks and before
every word split. Lexemes over PostgreSQL's 2047-byte limit are dropped, positions are clamped to 16383
and at most 256 kept per lexeme, as PostgreSQL itself does; a query ORs at most MAX_QUERY_LEXEMES
lexemes. Pure Python over SudachiPy: unit-tested without a database.

Thread-safety: the dictionary is loaded once per process (under a lock); a Sudachi tokenizer may
not be used from two threads at once, so each thread gets its own. A PostgreSQL backend is one
thread, so in practice there is one dictionary and one tokenizer per backend.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache

__all__ = [
    "JAPANESE", "OTHER", "AnalyzerUnavailable", "detect_language", "japanese_lexemes",
    "japanese_positions", "japanese_query_lexemes", "resolve_config", "to_tsvector_text", "to_tsquery_text",
    "tsvector_literal", "tsquery_or", "quote_lexeme", "FILTERS",
]

JAPANESE = "japanese"
OTHER = "other"
AUTO = "auto"

MAX_CHARS = 100_000          # characters of one text that are analysed (about 50k Japanese words)
MAX_QUERY_CHARS = 10_000     # characters of a search query (its first 256 distinct lexemes are used anyway)
MAX_NOUN_CHARS = 20          # the longest dictionary noun looked for inside an unknown katakana word
SPLIT_BUDGET = 50_000        # dictionary lookups per text for splitting unknown katakana words (~0.3 s)
CHUNK_BYTES = 16_384         # UTF-8 bytes per Sudachi call (its limit is 49,149 after normalisation)
MAX_LEXEME_BYTES = 2047      # PostgreSQL: "word is too long" past this
MAX_POSITION = 16383         # PostgreSQL clamps larger positions to this
MAX_POSITIONS_PER_LEXEME = 256   # PostgreSQL keeps at most this many positions per lexeme
MAX_QUERY_LEXEMES = 256      # a query ORs at most this many distinct lexemes

DEFAULT_MODE = "B"
DEFAULT_FILTER = "content"
DICTIONARY = "core"          # the sudachidict-core package


class AnalyzerUnavailable(RuntimeError):
    """SudachiPy or its dictionary is not installed in the interpreter that runs pgbert."""


# -- language detection --------------------------------------------------------------------------

def _is_kana(code: int) -> bool:
    # Hiragana, Katakana, Katakana phonetic extensions, half-width katakana.
    return 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F


def _is_kanji(code: int) -> bool:
    # CJK unified ideographs (+ extension A, compatibility ideographs, the supplementary planes), 々.
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF
            or 0x20000 <= code <= 0x3FFFF or code == 0x3005)


def detect_language(text: str | None, sample: int = 2000, threshold: float = 0.2) -> str:
    """'japanese' when kana and kanji make up at least `threshold` of the letters among the first
    `sample` characters, else 'other'. Digits, punctuation and spaces do not count.

    Script-based and cheap (one pass over at most `sample` characters). Han-only text (Chinese)
    counts as 'japanese' too: Sudachi still splits it into dictionary words, which is far better
    than PostgreSQL's parsers, which cannot split it at all.
    """
    if not text:
        return OTHER
    letters = cjk = 0
    for ch in text[:sample]:
        code = ord(ch)
        if code < 0x80:
            if ch.isalpha():
                letters += 1
        elif _is_kana(code) or _is_kanji(code):
            letters += 1
            cjk += 1
        elif ch.isalpha():
            letters += 1
    return JAPANESE if letters and cjk >= threshold * letters else OTHER


# -- the analyzer ----------------------------------------------------------------------------------

_ALWAYS_DROP = frozenset({"補助記号", "記号", "空白"})      # punctuation, symbols, whitespace
_FUNCTION_WORDS = frozenset({"助詞", "助動詞"})             # particles, auxiliary verbs
_CONTENT = frozenset({"名詞", "動詞", "形容詞", "形状詞", "副詞", "接頭辞", "接尾辞"})

# Which words (by Sudachi part of speech, a 6-tuple) become lexemes. Punctuation, symbols and
# whitespace never do. "particles" drops particles and auxiliary verbs; "content" (the default)
# keeps only nouns, verbs, adjectives, adverbs and affixes, and drops the light verbs that may be
# non-independent (する, ある, いる, なる, できる…). With BM25 the filter hardly matters (IDF
# discounts function words anyway); with ts_rank, which has no IDF, "content" ranks best.
FILTERS: dict[str, Callable[[Sequence[str]], bool]] = {
    "none": lambda pos: True,
    "particles": lambda pos: pos[0] not in _FUNCTION_WORDS,
    "content": lambda pos: pos[0] in _CONTENT and not (pos[0] in ("動詞", "形容詞") and pos[1] == "非自立可能"),
}

_lock = threading.Lock()
_dictionary = None
_local = threading.local()


def _load_dictionary():
    global _dictionary
    if _dictionary is None:
        with _lock:
            if _dictionary is None:
                try:
                    from sudachipy import Dictionary
                except ImportError as exc:
                    raise AnalyzerUnavailable(
                        "Japanese text search needs SudachiPy: install `sudachipy sudachidict-core` "
                        f"into pgbert's runtime environment ({exc})") from None
                try:
                    _dictionary = Dictionary(dict=DICTIONARY)
                except Exception as exc:  # ModuleNotFoundError for a missing dictionary, SudachiError
                    raise AnalyzerUnavailable(
                        f"Japanese text search needs the Sudachi dictionary `sudachidict-{DICTIONARY}`: "
                        f"install it into pgbert's runtime environment ({exc})") from None
    return _dictionary


def _tokenizer(mode: str):
    """This thread's Sudachi tokenizer for a split mode ('A', 'B' or 'C')."""
    tokenizers = getattr(_local, "tokenizers", None)
    if tokenizers is None:
        tokenizers = _local.tokenizers = {}
    tok = tokenizers.get(mode)
    if tok is None:
        if mode not in ("A", "B", "C"):
            raise ValueError(f"Sudachi split mode must be 'A', 'B' or 'C', not {mode!r}")
        # Only the fields we read: smaller and faster than the full morpheme info.
        tok = tokenizers[mode] = _load_dictionary().tokenizer(mode, fields={"pos", "normalized_form"})
    return tok


_BOUNDARY = re.compile(r"(?<=[\n。．！？!?])")
_SOFT_BREAK = re.compile(r"(?<=[\s、，,;；])")


def _split_long(piece: str, limit: int) -> Iterator[str]:
    """A piece over `limit` bytes cut at spaces/commas, or hard-cut where there are none."""
    current, size = [], 0
    for part in _SOFT_BREAK.split(piece):
        n = len(part.encode("utf-8"))
        if n > limit:  # no break for `limit` bytes: cut by characters (4 bytes at most each)
            if current:
                yield "".join(current)
                current, size = [], 0
            step = max(1, limit // 4)
            for i in range(0, len(part), step):
                yield part[i:i + step]
            continue
        if size + n > limit and current:
            yield "".join(current)
            current, size = [], 0
        current.append(part)
        size += n
    if current:
        yield "".join(current)


def _chunks(text: str, limit: int = CHUNK_BYTES) -> Iterator[str]:
    """Text in pieces of at most `limit` UTF-8 bytes, cut after line and sentence ends."""
    if len(text) * 4 <= limit:
        yield text
        return
    current, size = [], 0
    for piece in _BOUNDARY.split(text):
        n = len(piece.encode("utf-8"))
        if size + n > limit and current:
            yield "".join(current)
            current, size = [], 0
        if n > limit:
            yield from _split_long(piece, limit)
            continue
        current.append(piece)
        size += n
    if current:
        yield "".join(current)


def _tokenize(tok, chunk: str):
    """Morphemes of a chunk; a chunk that Sudachi still finds too long (normalisation can expand
    text) is halved until it fits."""
    from sudachipy.errors import SudachiError

    try:
        return list(tok.tokenize(chunk))
    except SudachiError:
        if len(chunk) < 2:
            return []
        half = len(chunk) // 2
        return _tokenize(tok, chunk[:half]) + _tokenize(tok, chunk[half:])


_KATAKANA_WORD = re.compile(r"[\u30A1-\u30FA\u30FC]{4,64}")
_NO_WORD_STARTS = frozenset("ーッンァィゥェォャュョヮヵヶ")  # a katakana word never starts with these


@lru_cache(maxsize=65536)
def _known_noun(word: str) -> str | None:
    """The normalised form of a dictionary noun spelled exactly `word`, or None."""
    for m in _load_dictionary().lookup(word):
        if m.part_of_speech()[0] == "名詞":
            return _normalise(m.normalized_form())
    return None


@lru_cache(maxsize=65536)
def _split_katakana(word: str) -> tuple[str, ...]:
    """An unknown katakana compound cut into dictionary nouns, longest match first, left to right
    (マルチプロセッサレイトレーシング -> マルチプロセッサー, レイト, レーシング); runs between nouns are
    kept as they are. () when no dictionary noun is found inside, or the word is one already.

    Sudachi reads a katakana run that is not in its dictionary as one unknown word, so without this
    コマンドラインオプションパーサ never matches a text that says コマンドラインオプション.
    """
    out: list[str] = []
    rest = ""
    i = 0
    while i < len(word):
        for j in range(min(len(word), i + MAX_NOUN_CHARS), i + 1, -1):
            if j - i == len(word) or (j < len(word) and word[j] in _NO_WORD_STARTS):
                continue
            known = _known_noun(word[i:j])
            if known:
                if rest:
                    out.append(rest)
                    rest = ""
                out.append(known)
                i = j
                break
        else:
            rest += word[i]
            i += 1
    if rest:
        out.append(rest)
    return tuple(out) if len(out) > 1 else ()


class _Splits:
    """_split_katakana for the unknown words of one text, at a bounded cost: each distinct word is charged the
    lookups it may take, and once SPLIT_BUDGET is spent the others stay whole. Charged whether or not the word's
    split is cached, so that a text always gives the same lexemes."""

    def __init__(self, check: Callable[[], object] | None):
        self.left, self.charged, self.check = SPLIT_BUDGET, set(), check

    def __call__(self, word: str) -> tuple[str, ...]:
        if word not in self.charged:
            cost = len(word) * (min(len(word), MAX_NOUN_CHARS) - 1)
            if cost > self.left:
                return ()
            self.left -= cost
            self.charged.add(word)
            if self.check is not None:
                self.check()
        return _split_katakana(word)


def _normalise(word: str) -> str:
    return unicodedata.normalize("NFKC", word).lower().strip()


def _has_word_char(word: str) -> bool:
    return any(ch.isalnum() for ch in word)


def japanese_positions(text: str | None, mode: str = DEFAULT_MODE, filter: str = DEFAULT_FILTER,
                       max_chars: int = MAX_CHARS, split_unknown: bool = True,
                       ascii_surface: bool = True, check: Callable[[], object] | None = None) -> list[tuple[str, int]]:
    """(lexeme, position) pairs of a Japanese text, in text order; positions start at 1.

    Words dropped by `filter` still take a position (like PostgreSQL stopwords); punctuation,
    symbols and whitespace do not. With split_unknown, an unknown katakana compound also yields
    the dictionary nouns inside it, at the same position. With ascii_surface, a word written in
    ASCII whose normalized form differs (Sudachi reads "game" as ゲーム, "It's" as イッツ) also
    yields its lowercased spelling, and a multi-word one ("open source") its words, at the same
    position, so English queries still find them. check(): called between Sudachi chunks and before each
    word split (whatever it raises, a cancel, propagates).
    Raises AnalyzerUnavailable without SudachiPy or its dictionary.
    """
    keep = FILTERS[filter]
    if not text:
        return []
    text = text[:max_chars].replace("\x00", " ")
    tok = _tokenizer(mode)
    splits = _Splits(check)
    out: list[tuple[str, int]] = []
    position = 0
    for n, chunk in enumerate(_chunks(text)):
        if check is not None and n:
            check()
        for m in _tokenize(tok, chunk):
            pos = m.part_of_speech()
            if pos[0] in _ALWAYS_DROP:
                continue
            word = _normalise(m.normalized_form())
            if not word or not _has_word_char(word):
                continue
            position += 1
            if keep(pos) and len(word.encode("utf-8")) <= MAX_LEXEME_BYTES:
                at = min(position, MAX_POSITION)
                out.append((word, at))
                if split_unknown and m.is_oov() and _KATAKANA_WORD.fullmatch(word):
                    out.extend((part, at) for part in splits(word))
                if ascii_surface:
                    surface = m.surface()
                    if surface.isascii() and len(surface) <= MAX_LEXEME_BYTES:
                        # "open source" (one Sudachi word) also gives open, source
                        for part in dict.fromkeys([surface.lower().strip(), *surface.lower().split()]):
                            if part != word and _has_word_char(part):
                                out.append((part, at))
    return out


def japanese_lexemes(text: str | None, mode: str = DEFAULT_MODE, filter: str = DEFAULT_FILTER,
                     max_chars: int = MAX_CHARS, split_unknown: bool = True,
                     ascii_surface: bool = True, check: Callable[[], object] | None = None) -> list[str]:
    """The normalised lexemes of a Japanese text, in text order, repeats included.

    >>> japanese_lexemes("書きました")
    ['書く']
    """
    return [word for word, _ in japanese_positions(text, mode, filter, max_chars, split_unknown, ascii_surface,
                                                   check)]


# -- PostgreSQL literals -----------------------------------------------------------------------------

def quote_lexeme(lexeme: str) -> str:
    """A lexeme as a quoted tsvector/tsquery operand: inside quotes, the only special characters
    are the quote itself (doubled) and backslash (escaped), so operators, colons, spaces and
    parentheses are plain characters. The lexeme must not be empty."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(pairs: Iterable[tuple[str, int]]) -> str:
    """A tsvector literal from (lexeme, position) pairs: `'lexeme':1,5 'other':2`.

    Empty lexemes and lexemes over 2047 bytes are skipped, positions are clamped to 1..16383 and at
    most 256 kept per lexeme, so PostgreSQL's tsvector input accepts the result as it is.
    """
    positions: dict[str, list[int]] = {}
    for lexeme, position in pairs:
        if not lexeme or len(lexeme.encode("utf-8")) > MAX_LEXEME_BYTES:
            continue
        bucket = positions.setdefault(lexeme, [])
        if len(bucket) < MAX_POSITIONS_PER_LEXEME:
            bucket.append(min(max(int(position), 1), MAX_POSITION))
    return " ".join(quote_lexeme(lexeme) + ":" + ",".join(map(str, sorted(set(pos))))
                    for lexeme, pos in positions.items())


def tsquery_or(lexemes: Iterable[str], limit: int = MAX_QUERY_LEXEMES) -> str:
    """`'a' | 'b' | …` over the distinct non-empty lexemes (first `limit`, in order); '' if none."""
    seen: dict[str, None] = {}
    for lexeme in lexemes:
        if lexeme and len(lexeme.encode("utf-8")) <= MAX_LEXEME_BYTES and lexeme not in seen:
            seen[lexeme] = None
            if len(seen) >= limit:
                break
    return " | ".join(quote_lexeme(lexeme) for lexeme in seen)


def resolve_config(text: str | None, config: str, fallback: str = "simple") -> str:
    """The config a text is analysed with: 'japanese' is pgbert's (Python); 'auto' becomes
    'japanese' or `fallback` by detect_language; any other name is PostgreSQL's and is returned."""
    name = (config or "").strip().lower()
    if name == AUTO:
        return JAPANESE if detect_language(text) == JAPANESE else fallback
    return JAPANESE if name == JAPANESE else config


def to_tsvector_text(text: str | None, config: str = JAPANESE,
                     check: Callable[[], object] | None = None) -> str | None:
    """A tsvector literal (with positions) for a document, or None when PostgreSQL should analyse
    it itself (config is a PostgreSQL config, or 'auto' and the text is not Japanese).

    `''` (no lexemes) is a valid, empty tsvector.
    """
    if resolve_config(text, config, fallback=OTHER) != JAPANESE:
        return None
    return tsvector_literal(japanese_positions(text, check=check))


def to_tsquery_text(query: str | None, config: str = JAPANESE) -> str | None:
    """A tsquery literal that ORs the query's distinct lexemes (`'パズル' | 'ゲーム'`), for ranking
    with ts_rank over the rows it matches; None when PostgreSQL should analyse the query itself.

    Never a syntax error and never an injection: every operand is quoted. A query without lexemes
    (empty, punctuation only) gives '' — use nullif(…, '')::tsquery, which matches nothing.
    """
    if resolve_config(query, config, fallback=OTHER) != JAPANESE:
        return None
    return tsquery_or(japanese_query_lexemes(query))


def japanese_query_lexemes(query: str | None, limit: int = MAX_QUERY_LEXEMES,
                           check: Callable[[], object] | None = None) -> list[str]:
    """The distinct lexemes of a Japanese search query, in order, at most `limit`: what
    to_tsquery_text ORs, for callers that rank in SQL themselves (e.g. BM25 over the GIN matches).

    Unlike documents, no ASCII spellings: a document carries both "game" and ゲーム and the query's
    ゲーム finds either; asking for both would count such a word twice (measured: lower MRR).
    """
    out: dict[str, None] = {}
    for lexeme in japanese_lexemes(query, ascii_surface=False, check=check):
        if len(lexeme.encode("utf-8")) <= MAX_LEXEME_BYTES:
            out[lexeme] = None
            if len(out) >= limit:
                break
    return list(out)
