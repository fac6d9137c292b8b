"""`pgbert import-vectors`: gensim's own test files (Word2Vec text and binary, fastText .vec, GloVe) become static
bundles whose vectors are gensim's; bad files are refused with a message that names the file and what to do."""
import os

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from pgbert.cli import main
from pgbert_export.sources import ExportError
from pgbert_export.word_vectors import import_vectors, is_lowercase
from pgbert_runtime import load_bundle
from pgbert_runtime.static import StaticEncoder

FILES = {  # name: (gensim test file, no_header, binary, lowercase vocabulary)
    "w2v": ("word2vec_pre_kv_c", False, False, True),
    "fasttext": ("lee_fasttext.vec", False, False, False),
    "w2v-binary": ("euclidean_vectors.bin", False, True, True),
    "glove": ("test_glove.txt", True, False, True),
}


def quiet(*_):
    pass


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_vectors_file_becomes_a_bundle_with_gensims_vectors(name, tmp_path):
    source, no_header, binary, lowercase = FILES[name]
    manifest = import_vectors(datapath(source), str(tmp_path / name), name=name, no_header=no_header, echo=quiet)
    vectors = KeyedVectors.load_word2vec_format(datapath(source), binary=binary, no_header=no_header)
    assert manifest["source"]["format"] == ("binary" if binary else "text")  # detected, not given
    assert manifest["source"]["lowercase"] is lowercase and manifest["normalize"] is True
    assert manifest["dimension"] == vectors.vector_size and manifest["vocab_size"] == len(vectors) + 1
    assert manifest["validation"]["min_cosine"] >= 0.999
    encoder = StaticEncoder(load_bundle(str(tmp_path / name)))
    words = [w for w in vectors.index_to_key[:50] if w.isalpha()][:4]
    out = encoder.encode([words[0], " ".join(words), f"{words[1]} zzqqxx {words[2]}"])
    expected = [vectors.get_mean_vector(w, pre_normalize=False, post_normalize=True)
                for w in ([words[0]], words, words[1:3])]
    np.testing.assert_allclose(out, np.stack(expected), atol=1e-6)


def test_a_lowercase_vocabulary_lowercases_texts_and_a_cased_one_does_not(tmp_path):
    import_vectors(datapath("word2vec_pre_kv_c"), str(tmp_path / "lower"), name="lower", echo=quiet)
    import_vectors(datapath("lee_fasttext.vec"), str(tmp_path / "cased"), name="cased", echo=quiet)
    lower = StaticEncoder(load_bundle(str(tmp_path / "lower")))
    cased = StaticEncoder(load_bundle(str(tmp_path / "cased")))
    np.testing.assert_array_equal(*lower.encode(["The Government", "the government"]))
    the, The = cased.tokenize(["the", "The"])
    assert the and The and the != The  # both in the fastText vocabulary, two words
    assert cased.tokenize(["the,of."]) == cased.tokenize(["the , of ."])  # punctuation is split from words
    assert is_lowercase(["the", "cat", "2001", "..."]) and not is_lowercase(["The", "cat", "Paris", "dog"])


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def lines(source, start=None, stop=None):
    with open(datapath(source), encoding="utf-8") as f:
        return f.read().splitlines(keepends=True)[start:stop]


@pytest.mark.parametrize("make, message", [
    (lambda d: write(d / "empty.vec", ""), "empty.vec is empty"),
    (lambda d: write(d / "notes.txt", "hello world, this is a text\n"),
     "notes.txt: not a Word2Vec/fastText vectors file"),
    (lambda d: write(d / "glove.txt", "".join(lines("test_glove.txt", 0, 5))), "looks like GloVe.*pass --no-header"),
    (lambda d: write(d / "cut.vec", "".join(lines("lee_fasttext.vec", 0, 30))[:-25]),
     "cut.vec is truncated: it ends in the middle of line 30"),
    (lambda d: write(d / "short.vec", "".join(lines("lee_fasttext.vec", 0, 30))),
     "short.vec is truncated: its header promises 1762 words, it holds 29"),
    (lambda d: write(d / "mixed.vec", "".join(lines("lee_fasttext.vec", 0, 5)) + "odd 0.1 0.2 0.3\n"
                     + "".join(lines("lee_fasttext.vec", 5, 9))),
     "mixed.vec: line 6 has 3 numbers, where the others have 10: mixed dimensions"),
    (lambda d: write(d / "words.vec", "3 2\nthe 0.1 0.2\nof zero one\n"),
     "words.vec: line 3 is not a word followed by numbers"),
])
def test_a_bad_file_is_refused_with_what_to_do(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ExportError, match=message):
        import_vectors(path, str(tmp_path / "out"), name="x", echo=quiet)
    assert not os.path.exists(tmp_path / "out")  # nothing half-written


def test_a_truncated_binary_file_and_a_wrong_format_flag(tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(open(datapath("euclidean_vectors.bin"), "rb").read()[:3000])
    with pytest.raises(ExportError, match="cut.bin is truncated: its header promises 2747 words of 10 numbers"):
        import_vectors(str(cut), str(tmp_path / "a"), name="a", echo=quiet)
    with pytest.raises(ExportError, match="word2vec_pre_kv_c looks like a text vectors file.*leave out --binary"):
        import_vectors(datapath("word2vec_pre_kv_c"), str(tmp_path / "b"), name="b", binary=True, echo=quiet)
    with pytest.raises(ExportError, match="euclidean_vectors.bin looks like a binary.*leave out --no-binary"):
        import_vectors(datapath("euclidean_vectors.bin"), str(tmp_path / "b"), name="b", binary=False, echo=quiet)
    with pytest.raises(ExportError, match="first line '1750 10' is a Word2Vec/fastText header.*leave out --no-h"):
        import_vectors(datapath("word2vec_pre_kv_c"), str(tmp_path / "c"), name="c", no_header=True, echo=quiet)
    mixed = write(tmp_path / "mixed.txt", "".join(lines("test_glove.txt", 0, 3)) + "odd 0.5 0.5\n")
    with pytest.raises(ExportError, match="mixed.txt: line 4 has 2 numbers, where the others have 50"):
        import_vectors(mixed, str(tmp_path / "d"), name="d", no_header=True, echo=quiet)


def test_limit_reads_the_first_words_of_a_truncated_file(tmp_path):
    short = write(tmp_path / "short.vec", "".join(lines("lee_fasttext.vec", 0, 30)))
    manifest = import_vectors(short, str(tmp_path / "out"), name="x", limit=20, echo=quiet)
    assert manifest["source"]["words"] == 20 and manifest["vocab_size"] == 21


def test_a_taken_name_or_a_bad_name_is_refused(tmp_path):
    import_vectors(datapath("word2vec_pre_kv_c"), str(tmp_path / "w2v"), name="w2v", echo=quiet)
    before = open(tmp_path / "w2v" / "manifest.json").read()
    with pytest.raises(ExportError, match="w2v exists: a model named 'w2v' was imported before"):
        import_vectors(datapath("lee_fasttext.vec"), str(tmp_path / "w2v"), name="w2v", echo=quiet)
    assert open(tmp_path / "w2v" / "manifest.json").read() == before
    with pytest.raises(ExportError, match="--name '../up'"):
        import_vectors(datapath("word2vec_pre_kv_c"), str(tmp_path / "up"), name="../up", echo=quiet)


def test_the_command_names_the_file_on_stderr(tmp_path, capsys):
    empty = write(tmp_path / "empty.vec", "")
    assert main(["import-vectors", empty, "--name", "e", "-o", str(tmp_path / "e")]) == 1
    assert f"pgbert import-vectors: {empty} is empty" in capsys.readouterr().err
    out = str(tmp_path / "glove")
    assert main(["import-vectors", datapath("test_glove.txt"), "--no-header", "--name", "glove", "-o", out]) == 0
    said = capsys.readouterr().out
    assert "[5/5] installing bundle" in said and "SELECT pgbert.add_model('glove'" in said
    assert load_bundle(out).manifest["model_kind"] == "static"
