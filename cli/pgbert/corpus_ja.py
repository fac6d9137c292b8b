"""A Japanese corpus: Debian's Japanese package descriptions (Translation-ja), fetched with apt.

The same protocol as corpus.py (English): the Japanese one-line summary is the query, and the right
answer is its own package's Japanese long description. apt runs with the same private source list
and state directory as corpus.py (the cached InRelease and Packages files are reused, so only the
Translation-ja index is downloaded), and the machine's own apt setup is untouched.

bookworm main: 6,606 stanzas with a Description-ja, 5,768 distinct descriptions once binary packages
that share one text are folded together (as parse_translation does for English).

Debian wraps long descriptions at ~80 columns. English lines are joined with a space; Japanese
has no spaces between words, so a line break between two Japanese characters is joined with
nothing (a space there would split a word in two for anyone who splits on spaces).
"""
from __future__ import annotations

import glob
import os
import subprocess

from .corpus import Package, _codename
from .paths import ROOT

__all__ = ["Package", "fetch_translation_ja", "parse_translation_ja", "load_packages_ja"]

LANGUAGE = "ja"
_FIELD = f"Description-{LANGUAGE}: "


def fetch_translation_ja(cache: str | None = None, echo=print) -> str:
    """Path of the decompressed Translation-ja file, fetched once and cached."""
    cache = cache or os.path.join(ROOT, ".cache", "corpus")
    target = os.path.join(cache, f"Translation-{LANGUAGE}")
    if os.path.exists(target) and os.path.getsize(target) > 0:
        return target
    lists = os.path.join(cache, "lists")
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    source_list = os.path.join(cache, "sources.list")
    with open(source_list, "w") as f:
        f.write(f"deb http://deb.debian.org/debian {_codename()} main\n")
    opts = ["-o", f"Dir::Etc::SourceList={source_list}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={lists}", "-o", f"Acquire::Languages={LANGUAGE}",
            "-o", "APT::Get::List-Cleanup=0"]
    echo(f"fetching Debian package descriptions ({_codename()} main, Translation-{LANGUAGE}) with apt")
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True)
    found = [p for p in glob.glob(os.path.join(lists, f"*Translation-{LANGUAGE}*")) if "partial" not in p]
    if not found:
        raise RuntimeError(f"apt fetched no Translation-{LANGUAGE} file; check the Debian mirror is reachable")
    with open(target + ".tmp", "wb") as out:
        subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", found[0]], stdout=out, check=True)
    os.replace(target + ".tmp", target)
    return target


def _is_cjk(ch: str) -> bool:
    """Kana, kanji, CJK punctuation and full-width forms: scripts written without spaces."""
    code = ord(ch)
    return (0x3000 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF)


def _join(parts: list[str]) -> str:
    """Join wrapped lines: no space between two CJK characters, a space otherwise."""
    text = ""
    for part in parts:
        if not text:
            text = part
        elif _is_cjk(text[-1]) and _is_cjk(part[0]):
            text += part
        else:
            text += " " + part
    return text


def parse_translation_ja(path: str) -> list[Package]:
    """Distinct Japanese descriptions, in file order (several binary packages can share one text).

    Paragraph separators (" .") end a paragraph; paragraphs are joined with a space.
    """
    packages, seen = [], set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for stanza in f.read().split("\n\n"):
            name, lines, in_desc = None, [], False
            for line in stanza.splitlines():
                if line.startswith("Package: "):
                    name = line[9:].strip()
                elif line.startswith(_FIELD):
                    lines, in_desc = [line[len(_FIELD):].strip()], True
                elif in_desc and line.startswith(" "):
                    text = line[1:]
                    lines.append("" if text.strip() == "." else text.strip())
                elif in_desc:
                    in_desc = False
            if not name or not lines or not lines[0]:
                continue
            summary = lines[0]
            paragraphs, current = [], []
            for part in lines[1:]:
                if part:
                    current.append(part)
                elif current:
                    paragraphs.append(_join(current))
                    current = []
            if current:
                paragraphs.append(_join(current))
            body = " ".join(paragraphs).strip()
            if not body or body in seen:
                continue
            seen.add(body)
            packages.append(Package(name, summary, body))
    return packages


def load_packages_ja(limit: int | None = None, echo=print) -> list[Package]:
    packages = parse_translation_ja(fetch_translation_ja(echo=echo))
    return packages[:limit] if limit else packages
