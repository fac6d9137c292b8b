"""pgbert_runtime.lexical: Japanese lexemes for PostgreSQL text search (no database needed).

The tsvector / tsquery literals are checked against PostgreSQL's input rules in Python: a quoted
operand ends at the first quote that is not doubled, a backslash escapes the next character.
(bench/lexical_study.py feeds the same literals to PostgreSQL itself.) Tests that segment text
skip when SudachiPy or sudachidict-core is not installed; the literal and language tests do not.
"""
from __future__ import annotations

import re
import threading

import pytest

from pgbert.corpus import parse_translation
from pgbert_runtime import lexical
from pgbert_runtime.lexical import (
    detect_language,
    japanese_lexemes,
    japanese_positions,
    to_tsquery_text,
    to_tsvector_text,
    tsquery_or,
    tsvector_literal,
)


@pytest.fixture
def sudachi():
    pytest.importorskip("sudachipy")
    pytest.importorskip("sudachidict_core")

_OPERAND = r"'(?:[^'\\]|''|\\.)+'"
TSQUERY_OR = re.compile(rf"^{_OPERAND}(?: \| {_OPERAND})*$")
TSVECTOR = re.compile(rf"^{_OPERAND}:\d+(?:,\d+)*(?: {_OPERAND}:\d+(?:,\d+)*)*$")


def unquote_all(literal: str) -> list[str]:
    """The operands of a literal, read as PostgreSQL reads quoted operands."""
    out, i = [], 0
    while i < len(literal):
        if literal[i] != "'":
            i += 1
            continue
        i += 1
        word = []
        while True:
            ch = literal[i]
            if ch == "\\":
                word.append(literal[i + 1])
                i += 2
            elif ch == "'" and literal[i + 1:i + 2] == "'":
                word.append("'")
                i += 2
            elif ch == "'":
                i += 1
                break
            else:
                word.append(ch)
                i += 1
        out.append("".join(word))
    return out


def tsvector_entries(literal: str) -> dict[str, list[int]]:
    entries = {}
    for match in re.finditer(rf"({_OPERAND}):(\d+(?:,\d+)*)", literal):
        [lexeme] = unquote_all(match.group(1))
        entries[lexeme] = [int(p) for p in match.group(2).split(",")]
    return entries


# -- language detection ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "古代戦争のリアルタイム戦略ゲーム",
    "Xfce4 パネル用 cpufreq 情報プラグイン",
    "古代戦争",                       # kanji only
    "ｶﾀｶﾅ",                          # half-width katakana
    "2048 パズルは数学に基くパズルゲームです。",
])
def test_detects_japanese(text):
    assert detect_language(text) == "japanese"


@pytest.mark.parametrize("text", [
    "", None, "real-time strategy game of ancient warfare", "12345 !?", "한국어 텍스트입니다",
    "Привет, мир", "A long English description that mentions 東京 once in passing, nothing more.",
])
def test_detects_other(text):
    assert detect_language(text) == "other"


# -- segmentation -------------------------------------------------------------------------------------

def test_inflected_verbs_normalise_to_dictionary_form(sudachi):
    assert japanese_lexemes("書きました") == ["書く"]
    assert japanese_lexemes("本を読んだ。本を読みます。") == ["本", "読む", "本", "読む"]
    assert "食べる" in japanese_lexemes("食べられない")


def test_width_case_and_spelling_variants_normalise(sudachi):
    assert japanese_lexemes("ＡＢＣ　１２３") == japanese_lexemes("abc 123") == ["abc", "123"]
    assert japanese_lexemes("ｶﾀｶﾅ") == japanese_lexemes("カタカナ")
    assert japanese_lexemes("サーバ") == japanese_lexemes("サーバー")
    assert japanese_lexemes("Python") == ["python"]


def test_english_words_keep_their_spelling_beside_sudachis_reading(sudachi):
    positions = japanese_positions("Linux 用の game engine と open source ツール")
    at = dict(positions)["ゲーム"]
    assert ("game", at) in positions
    assert {"linux", "engine", "エンジン", "open", "source", "ツール"} <= {w for w, _ in positions}
    assert "game" not in japanese_lexemes("Linux 用の game engine", ascii_surface=False)


def test_particles_auxiliaries_punctuation_and_spaces_are_dropped(sudachi):
    lexemes = japanese_lexemes("2048 パズルは、数学に基くパズルゲームです。　！")
    assert {"パズル", "数学", "ゲーム", "2048"} <= set(lexemes)
    assert not {"は", "に", "です", "だ", "、", "。", "！", " ", "\u3000"} & set(lexemes)
    with_particles = japanese_lexemes("パズルは数学", filter="none")
    assert "は" in with_particles and "、" not in with_particles


def test_dropped_function_words_still_take_positions(sudachi):
    assert japanese_positions("本を読んだ") == [("本", 1), ("読む", 3)]


def test_unknown_katakana_compounds_also_yield_the_nouns_inside(sudachi):
    lexemes = japanese_lexemes("新しいコマンドラインオプションパーサです")
    assert "コマンドラインオプションパーサ" in lexemes          # the word itself stays
    assert {"コマンドライン", "オプション"} <= set(lexemes)    # and its dictionary parts
    positions = dict(japanese_positions("新しいコマンドラインオプションパーサです"))
    assert positions["オプション"] == positions["コマンドラインオプションパーサ"]
    assert "オプション" not in japanese_lexemes("新しいコマンドラインオプションパーサです", split_unknown=False)


def test_modes_and_filters_are_checked(sudachi):
    with pytest.raises(ValueError):
        japanese_lexemes("日本語", mode="D")
    with pytest.raises(KeyError):
        japanese_lexemes("日本語", filter="nope")


def test_empty_and_punctuation_only_give_nothing(sudachi):
    for text in ("", None, "。、！？", "   ", "\u3000\n\t", "!!!...", "★☆♪"):
        assert japanese_lexemes(text) == []


def test_long_text_is_chunked_and_bounded(sudachi):
    sentence = "日本語の文章を解析します。"
    text = sentence * (1_000_000 // len(sentence.encode()))  # ~1 MB of UTF-8
    lexemes = japanese_lexemes(text)
    assert 0 < len(lexemes) <= lexical.MAX_CHARS
    assert set(lexemes) == {"日本語", "文章", "解析"}
    no_breaks = "あいうえお" * 200_000  # 1,000,000 characters, no sentence or line end
    assert japanese_lexemes(no_breaks, max_chars=200_000) is not None


def test_chunks_respect_the_byte_limit_and_keep_all_text():
    text = ("短い文です。" * 3000 + "\n" + "長" * 20_000 + "、" + "い" * 7000) * 2
    chunks = list(lexical._chunks(text, 4096))
    assert "".join(chunks) == text
    assert all(len(c.encode("utf-8")) <= 4096 for c in chunks)
    assert chunks[0].endswith("。")


def test_text_that_expands_under_normalisation_still_analyses(sudachi):
    assert to_tsvector_text("ﷺ" * 30_000) is not None
    assert isinstance(to_tsvector_text("㍿" * 30_000), str)


def test_threads_each_get_their_own_tokenizer(sudachi):
    text = "古代戦争のリアルタイム戦略ゲームです。" * 50
    expected = japanese_lexemes(text)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(japanese_lexemes(text))
        except Exception as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20 and all(r == expected for r in results)


def test_missing_dictionary_is_a_clear_error(monkeypatch):
    pytest.importorskip("sudachipy")
    monkeypatch.setattr(lexical, "_dictionary", None)
    monkeypatch.setattr(lexical, "DICTIONARY", "no-such-edition")
    with pytest.raises(lexical.AnalyzerUnavailable, match="sudachidict-no-such-edition"):
        lexical._load_dictionary()


# -- tsvector literals -----------------------------------------------------------------------------------

def test_tsvector_text_has_lexemes_with_positions(sudachi):
    literal = to_tsvector_text("本を読んだ。本を読みます。")
    assert TSVECTOR.match(literal)
    assert tsvector_entries(literal) == {"本": [1, 5], "読む": [3, 7]}


def test_tsvector_literal_quotes_and_bounds():
    literal = tsvector_literal([("it's", 1), ("a\\b", 2), ("x" * 3000, 3), ("", 4), ("c:d|e", 0),
                                ("far", 10**6)] + [("many", p) for p in range(1, 400)])
    assert TSVECTOR.match(literal)
    entries = tsvector_entries(literal)
    assert set(entries) == {"it's", "a\\b", "c:d|e", "far", "many"}
    assert entries["c:d|e"] == [1] and entries["far"] == [lexical.MAX_POSITION]
    assert len(entries["many"]) == lexical.MAX_POSITIONS_PER_LEXEME


def test_empty_documents_give_an_empty_tsvector(sudachi):
    assert to_tsvector_text("", "japanese") == ""
    assert to_tsvector_text("。。。", "japanese") == ""


def test_configs_route_text_to_python_or_postgresql(sudachi):
    japanese, english = "古代戦争のゲーム", "a strategy game"
    assert to_tsvector_text(japanese, "auto") and to_tsquery_text(japanese, "auto")
    assert to_tsvector_text(english, "auto") is None and to_tsquery_text(english, "auto") is None
    assert to_tsvector_text(japanese, "english") is None and to_tsquery_text(japanese, "simple") is None
    # forced through Sudachi, English words keep their spelling next to Sudachi's katakana reading
    assert tsvector_entries(to_tsvector_text(english, "japanese")) == {
        "a": [1], "ストラテジー": [2], "strategy": [2], "ゲーム": [3], "game": [3]}
    assert lexical.resolve_config(english, "auto", fallback="english") == "english"
    assert lexical.resolve_config(japanese, "auto") == "japanese"
    assert lexical.resolve_config(japanese, "german") == "german"
    assert lexical.resolve_config(english, "Japanese") == "japanese" and to_tsvector_text(japanese, " AUTO ")


# -- tsquery literals ----------------------------------------------------------------------------------------

def test_tsquery_is_an_or_of_distinct_lexemes(sudachi):
    query = to_tsquery_text("数学に基くパズルゲーム。パズル！")
    assert TSQUERY_OR.match(query)
    assert unquote_all(query) == ["数学", "基づく", "パズル", "ゲーム"]


TRICKY = [
    "", "   ", "。、！？", "'", "''", "\\", "\\'", "a:b", "a:*", "&|!()<>", "!パズル", "(ゲーム)",
    "'; DROP TABLE docs; --", "パズル' | 'x", "パズル\\' & !'ゲーム", "<->", "<2>", "日本語:A*",
    "C++ と C# の本", "\x00ゼロ\x00", "😀 絵文字 🎮", "ｶﾀｶﾅ：全角コロン＆アンド", "x" * 5000 + "語",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tsquery_text_is_always_valid(sudachi, text):
    query = to_tsquery_text(text, "japanese")
    assert query == "" or TSQUERY_OR.match(query), query
    operands = unquote_all(query)
    assert all(operands) and len(operands) == len(set(operands))
    assert operands == list(dict.fromkeys(japanese_lexemes(text, ascii_surface=False)))
    assert all(len(o.encode()) <= lexical.MAX_LEXEME_BYTES for o in operands)


@pytest.mark.parametrize("text", TRICKY)
def test_tsvector_text_is_always_valid(sudachi, text):
    literal = to_tsvector_text(text, "japanese")
    assert literal == "" or TSVECTOR.match(literal), literal
    for lexeme, positions in tsvector_entries(literal).items():
        assert lexeme and all(1 <= p <= lexical.MAX_POSITION for p in positions)


def test_queries_leave_out_the_ascii_spellings_that_documents_carry(sudachi):
    assert set(tsvector_entries(to_tsvector_text("game エンジン"))) == {"ゲーム", "game", "エンジン"}
    assert unquote_all(to_tsquery_text("game エンジン")) == ["ゲーム", "エンジン"]
    assert lexical.japanese_query_lexemes("game エンジン。ゲーム") == ["ゲーム", "エンジン"]
    assert lexical.japanese_query_lexemes("猫 犬 鳥 魚", limit=2) == ["猫", "犬"]


def test_tsquery_or_quotes_anything():
    query = tsquery_or(["it's", "a\\b", "x|y", "(z)", "", "it's"])
    assert TSQUERY_OR.match(query)
    assert unquote_all(query) == ["it's", "a\\b", "x|y", "(z)"]
    assert tsquery_or([]) == "" and tsquery_or(["", ""]) == ""


def test_huge_query_is_bounded(sudachi):
    text = "".join(f"単語{i}番。" for i in range(100_000))  # ~1 MB
    query = to_tsquery_text(text)
    assert TSQUERY_OR.match(query)
    assert len(unquote_all(query)) <= lexical.MAX_QUERY_LEXEMES


def katakana_bomb(words: int = 1_600, seed: int = 1) -> str:
    """Round 3, finding 10: random 64-character katakana words, each unknown to the dictionary (104k characters
    for 1,600 words took 13 s to split, with no cancel point)."""
    import random

    rng = random.Random(seed)
    kana = [chr(c) for c in range(0x30A1, 0x30FB)]
    return "、".join("".join(rng.choice(kana) for _ in range(64)) for _ in range(words))


class CountingDictionary:
    def __init__(self, real):
        self.real, self.lookups = real, 0

    def lookup(self, word):
        self.lookups += 1
        return self.real.lookup(word)


@pytest.fixture
def lookups(sudachi, monkeypatch):
    """Dictionary lookups made by splitting unknown katakana words (the caches emptied first)."""
    japanese_lexemes("準備")  # the tokenizer exists before the dictionary is wrapped
    counting = CountingDictionary(lexical._load_dictionary())
    monkeypatch.setattr(lexical, "_load_dictionary", lambda: counting)
    lexical._known_noun.cache_clear()
    lexical._split_katakana.cache_clear()
    yield counting
    lexical._known_noun.cache_clear()
    lexical._split_katakana.cache_clear()


def test_splitting_unknown_katakana_words_is_bounded_per_text(lookups):
    bomb = katakana_bomb()
    lexemes = japanese_lexemes(bomb)
    assert 0 < lookups.lookups <= lexical.SPLIT_BUDGET  # it was 1,600 x 2,016
    assert len(lexemes) > 1_600  # every word is still indexed whole
    assert japanese_lexemes(bomb) == lexemes  # the same lexemes with the splits cached


def test_analysis_calls_check_and_a_cancel_stops_it(lookups):
    class Canceled(Exception):
        pass

    calls = []

    def cancel_after_five():
        calls.append(1)
        if len(calls) > 5:
            raise Canceled("canceling statement due to statement timeout")

    with pytest.raises(Canceled):
        to_tsvector_text(katakana_bomb(), "japanese", check=cancel_after_five)
    stopped_at = lookups.lookups
    assert stopped_at <= 6 * 64 * (lexical.MAX_NOUN_CHARS - 1)  # at most a word's lookups after each check
    counted = []
    lexical.japanese_query_lexemes("東京の天気。" * 3_000, check=lambda: counted.append(1))
    assert len(counted) >= 2  # between Sudachi chunks, too


def test_a_long_dictionary_noun_inside_an_unknown_word_is_still_found(sudachi):
    word = "ソーシャルネットワーキングサービスヌピョ"  # a 17-character noun, then nonsense
    lexemes = japanese_lexemes(word)
    assert lexemes[0] == word and "ソーシャル・ネットワーキング・サービス" in lexemes


# -- the Japanese corpus loader --------------------------------------------------------------------------------

def test_translation_ja_stanzas_parse_like_translation_en(tmp_path):
    path = tmp_path / "Translation-ja"
    path.write_text(
        "Package: 2048-qt\nDescription-md5: 0f25\nDescription-ja: 数学に基くパズルゲーム\n"
        " 2048 パズルは数学に基くパズルゲームです。格子上のタイルをスライドさせて\n"
        " 合体させてください。\n .\n Qt で書かれています。\n\n"
        "Package: twin\nDescription-md5: 0f25\nDescription-ja: 同じ説明\n"
        " 2048 パズルは数学に基くパズルゲームです。格子上のタイルをスライドさせて\n"
        " 合体させてください。\n .\n Qt で書かれています。\n\n"
        "Package: no-body\nDescription-ja: 概要だけ\n\n"
        "Package: english-words\nDescription-ja: A tool\n written in\n Python\n", encoding="utf-8")
    packages = parse_translation(str(path), "ja")
    assert [p.name for p in packages] == ["2048-qt", "english-words"]   # duplicates and bodiless skipped
    first = packages[0]
    assert first.summary == "数学に基くパズルゲーム"
    # a line break between Japanese characters joins without a space; paragraphs with one
    assert first.description == ("2048 パズルは数学に基くパズルゲームです。格子上のタイルをスライドさせて"
                                 "合体させてください。 Qt で書かれています。")
    assert packages[1].description == "written in Python"
