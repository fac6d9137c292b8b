"""`pgbert import-vectors FILE --name NAME`: word vectors (Word2Vec text or binary, fastText .vec, GloVe) -> a
static bundle (pgbert_runtime/static.py runs it): a word-level tokenizer over the file's vocabulary, the vectors
as embeddings.npy, mean pooling, normalised.

Files are read by gensim's KeyedVectors.load_word2vec_format; what it cannot read is diagnosed here, so that
every refusal names the file, what is wrong with it and what to do.
"""
from __future__ import annotations

import os
import re

import numpy as np

from .export import Progress, _write_manifest, install_bundle
from .sources import ExportError
from .static import DEFAULT_MAX_TOKENS, check_bundle, staging_folder, write_static_bundle

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
UNKNOWN = "[UNK]"
# A vocabulary is lowercase (texts are lowercased before lookup) when at most this share of its words that have
# letters has an uppercase one: cased vocabularies (fastText, Word2Vec GoogleNews) have names and sentence starts,
# far more than this; lowercased ones (GloVe) none, or a few stray tokens.
UPPERCASE_SHARE = 0.01
# Bytes that a text file's numbers are written with: the first vector's bytes decide text or binary.
NUMBER_BYTES = frozenset(b"0123456789+-.eE \t\r\nnaifNAIF")


class Header:
    """What the first lines say: words and dimension (GloVe: no header, the dimension of its first line)."""

    def __init__(self, words: int | None, dimension: int, binary: bool):
        self.words, self.dimension, self.binary = words, dimension, binary


def read_header(path: str, binary: bool | None, no_header: bool) -> Header:
    """The file's header and format, checked before gensim reads it (an empty file, or one that is no vectors
    file, is refused here); binary None: detected from the bytes after the header."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror}") from None
    if not head.strip():
        raise ExportError(f"{path} is empty: a vectors file has a line per word (a word, then its numbers)")
    first, _, rest = head.partition(b"\n")
    fields = first.split()
    if no_header:
        if binary:
            raise ExportError(f"{path}: --no-header reads GloVe's text format only; a binary file has a header")
        if len(fields) == 2 and all(x.isdigit() for x in fields):
            raise ExportError(f"{path}: its first line {first.decode(errors='replace')!r} is a Word2Vec/fastText "
                              f"header (words, dimension), not a GloVe line: leave out --no-header")
        if len(fields) < 2 or not all(_is_number(x) for x in fields[1:]):
            raise ExportError(f"{path}: not a GloVe file: its first line should be a word and its numbers, but "
                              f"starts {first[:60]!r}")
        return Header(None, len(fields) - 1, False)
    if len(fields) != 2 or not all(x.isdigit() and int(x) > 0 for x in fields):
        glove = len(fields) > 2 and all(_is_number(x) for x in fields[1:])
        raise ExportError(f"{path}: not a Word2Vec/fastText vectors file: its first line should be '<number of "
                          f"words> <dimension>', but starts {first[:40]!r}" +
                          ("; it looks like GloVe (no header): pass --no-header" if glove else ""))
    words, dimension = (int(x) for x in fields)
    # A text file's first vector is a word then its numbers; a binary file's word is followed by raw float32s.
    vector = rest[rest.find(b" ") + 1:][:4 * dimension]
    looks_binary = not set(vector) <= NUMBER_BYTES
    if binary is not None and binary != looks_binary:  # gensim would read garbage words, or fail obscurely
        raise ExportError(f"{path} looks like a {'binary' if looks_binary else 'text'} vectors file (its first "
                          f"vector is written {'as raw bytes' if looks_binary else 'in digits'}); leave out "
                          f"--{'no-' if looks_binary else ''}binary")
    return Header(words, dimension, looks_binary)


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def load_vectors(path: str, header: Header, limit: int | None):
    """gensim's KeyedVectors; any failure becomes an ExportError that says what is wrong (diagnose)."""
    from gensim.models import KeyedVectors

    try:
        vectors = KeyedVectors.load_word2vec_format(path, binary=header.binary, no_header=header.words is None,
                                                    limit=limit, unicode_errors="strict")
    except (EOFError, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise ExportError(diagnose(path, header, limit, exc)) from None
    if not len(vectors):
        raise ExportError(f"{path} holds no word vectors")
    if not all(isinstance(word, str) and word for word in vectors.index_to_key):
        raise ExportError(f"{path}: some of its words are unreadable: not a {'binary' if header.binary else 'text'} "
                          f"vectors file as its header says")
    return vectors


def diagnose(path: str, header: Header, limit: int | None, exc: Exception) -> str:
    """Why gensim could not read the file, in words: truncated, mixed dimensions, not UTF-8, not numbers."""
    again = "download it again, or pass --limit N to read only its first N words"
    if header.binary:
        if isinstance(exc, EOFError):
            return (f"{path} is truncated: its header promises {header.words} words of {header.dimension} numbers, "
                    f"the file ends before them; {again}")
        return f"{path}: cannot read it as binary Word2Vec ({type(exc).__name__}: {exc})"
    read = 0  # vector lines read
    with open(path, "rb") as f:
        lines = iter(f)
        if header.words is not None:
            next(lines)
        for line in lines:
            if limit is not None and read >= limit:
                break
            read += 1
            number = read + (header.words is not None)
            problem = _line_problem(line, header.dimension)
            if problem and not line.endswith(b"\n"):
                return f"{path} is truncated: it ends in the middle of line {number}; {again}"
            if problem:
                return (f"{path}: line {number} {problem}; every word needs {header.dimension} numbers "
                        f"(one model's vectors)")
    if header.words is not None and read < min(header.words, limit or header.words):
        return f"{path} is truncated: its header promises {header.words} words, it holds {read}; {again}"
    return f"{path}: gensim cannot read it ({type(exc).__name__}: {exc})"


def _line_problem(line: bytes, dimension: int) -> str | None:
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
    except UnicodeDecodeError:
        return ("is not UTF-8 text: a text vectors file is UTF-8 throughout (a binary Word2Vec file? then it was "
                "read as text because of --no-binary or its header: pass --binary)")
    if not all(_is_number(p.encode()) for p in parts[1:]):
        return "is not a word followed by numbers: not a vectors file"
    if len(parts) - 1 != dimension:
        return f"has {len(parts) - 1} numbers, where the others have {dimension}: mixed dimensions"
    return None


def is_lowercase(words: list[str]) -> bool:
    """Whether a vocabulary is lowercase: at most UPPERCASE_SHARE of its words with letters have an uppercase one."""
    cased = [w for w in words if w.lower() != w.upper()]
    upper = sum(1 for w in cased if w != w.lower())
    return upper <= UPPERCASE_SHARE * len(cased)


def word_tokenizer(words: list[str], lowercase: bool):
    """A word-level tokenizer (the tokenizers library) over words, ids in their order, and the unknown token's
    id (after them): words and runs of punctuation are split apart (Whitespace: \\w+|[^\\w\\s]+), and lowercased
    first when the vocabulary is."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocabulary = {word: i for i, word in enumerate(words)}
    unknown = UNKNOWN
    while unknown in vocabulary:  # a vocabulary holding "[UNK]" as a word keeps it
        unknown = f"[{unknown}]"
    vocabulary[unknown] = len(words)
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token=unknown))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer, vocabulary[unknown]


def unreachable(tokenizer, words: list[str]) -> int:
    """Words no text can ever be tokenized to (they hold punctuation the pre-tokenizer splits, or uppercase
    letters in a lowercase vocabulary): reported, so that a user knows what the model cannot see."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    found = encode(words, add_special_tokens=False)
    return sum(1 for i, e in enumerate(found) if e.ids != [i])


def import_vectors(path: str, output: str, *, name: str, binary: bool | None = None, no_header: bool = False,
                   limit: int | None = None, echo=print) -> dict:
    """Read a vectors file and write a static bundle at output (refused if a folder is there); returns its
    manifest. binary None: detected; no_header: GloVe; limit: only the first N words."""
    if not NAME.fullmatch(name or ""):
        raise ExportError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names a folder and a model)")
    if os.path.lexists(output):
        raise ExportError(f"{output} exists: a model named {name!r} was imported before. Choose another --name (or "
                          f"-o); replacing the files of a registered model would stop it working")
    progress = Progress(5, echo)
    progress.step(f"reading {path}")
    header = read_header(path, binary, no_header)
    vectors = load_vectors(path, header, limit)
    words = list(vectors.index_to_key)
    echo(f"      {len(words)} words x {vectors.vector_size} dimensions "
         f"({'binary' if header.binary else 'text'}{', no header' if header.words is None else ''})")
    lowercase = is_lowercase(words)
    progress.step(f"building a word-level tokenizer ({'lowercase: texts are lowercased' if lowercase else 'cased'})")
    tokenizer, unknown = word_tokenizer(words, lowercase)
    missed = unreachable(tokenizer, words)
    if missed:
        echo(f"      {missed} words can never be looked up (punctuation inside, or uppercase in a lowercase "
             f"vocabulary)")
    table = np.vstack([np.asarray(vectors.vectors, dtype=np.float32), np.zeros((1, vectors.vector_size), np.float32)])
    with staging_folder(output) as staging:
        progress.step("writing embeddings.npy, tokenizer.json and manifest.json")
        manifest = write_static_bundle(
            staging, table, tokenizer.to_str(), model_id=f"{name} (static, word vectors from "
            f"{os.path.basename(path)})", normalize=True, max_tokens=DEFAULT_MAX_TOKENS, unk_token_ids=[unknown],
            source={"file": os.path.abspath(path), "format": "binary" if header.binary else "text",
                    "header": header.words is not None, "words": len(words), "lowercase": lowercase,
                    "unreachable_words": missed},
            tools={"gensim": _gensim_version()})
        progress.step("checking pgbert's static engine against gensim's mean vectors")
        texts, reference = samples(vectors, words, tokenizer)
        manifest["validation"] = check_bundle(staging, texts, reference, "gensim", echo)
        _write_manifest(staging, manifest)
        progress.step(f"installing bundle at {output}")
        install_bundle(staging, output)
    return manifest


def samples(vectors, words: list[str], tokenizer) -> tuple[list[str], np.ndarray]:
    """A few texts of reachable words (one word, three, ten, with an unknown word among them, and one of unknown
    words only) and what they must embed to: gensim's normalised mean of those words' vectors."""
    reachable = [w for i, w in enumerate(words[:200]) if tokenizer.encode(w, add_special_tokens=False).ids == [i]]
    reachable = reachable or words[:1]
    picks = [reachable[:1], reachable[:3], reachable[-10:], reachable[:2]]
    texts = [" ".join(p) for p in picks[:3]] + [f"{picks[3][0]} qqqzzzxxq {picks[3][-1]}", "qqqzzzxxq"]
    reference = [vectors.get_mean_vector(p, pre_normalize=False, post_normalize=True) for p in picks]
    return texts, np.stack([*reference, np.zeros(vectors.vector_size, np.float32)])


def _gensim_version() -> str:
    import gensim

    return gensim.__version__
