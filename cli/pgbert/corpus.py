"""Real corpora: Debian's package descriptions (summary + long description), fetched with apt, in
English (Translation-en, about 54,000 distinct) or Japanese (Translation-ja, 5,768 distinct).

apt runs with a private source list and state directory, so the machine's own apt setup is untouched.
The summary is a natural query whose right answer is its own package's description.
"""
from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass

from .paths import ROOT


@dataclass(frozen=True)
class Package:
    name: str
    summary: str
    description: str


def _codename() -> str:
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or "bookworm"
    return "bookworm"


def fetch_translation(language: str = "en", cache: str | None = None, echo=print) -> str:
    """Path of the decompressed Translation-<language> file, fetched once and cached."""
    cache = cache or os.path.join(ROOT, ".cache", "corpus")
    target = os.path.join(cache, f"Translation-{language}")
    if os.path.exists(target) and os.path.getsize(target) > 0:
        return target
    os.makedirs(os.path.join(cache, "lists", "partial"), exist_ok=True)
    source_list = os.path.join(cache, "sources.list")
    with open(source_list, "w") as f:
        f.write(f"deb http://deb.debian.org/debian {_codename()} main\n")
    opts = ["-o", f"Dir::Etc::SourceList={source_list}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={os.path.join(cache, 'lists')}", "-o", f"Acquire::Languages={language}",
            "-o", "APT::Get::List-Cleanup=0"]
    echo(f"fetching Debian package descriptions ({_codename()} main, Translation-{language}) with apt")
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True)
    found = [p for p in glob.glob(os.path.join(cache, "lists", f"*Translation-{language}*")) if "partial" not in p]
    if not found:
        raise RuntimeError(f"apt fetched no Translation-{language} file; check the Debian mirror is reachable")
    with open(target + ".tmp", "wb") as out:
        subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", found[0]], stdout=out, check=True)
    os.replace(target + ".tmp", target)
    return target


def _is_cjk(ch: str) -> bool:
    """Kana, kanji, CJK punctuation and full-width forms: scripts written without spaces."""
    code = ord(ch)
    return (0x3000 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF)


def join_lines(parts: list[str]) -> str:
    """Join wrapped lines: a space between them, except between two CJK characters (Japanese has no
    spaces between words: a space there would split a word in two)."""
    text = ""
    for part in parts:
        if not text:
            text = part
        elif _is_cjk(text[-1]) and _is_cjk(part[0]):
            text += part
        else:
            text += " " + part
    return text


def parse_translation(path: str, language: str = "en") -> list[Package]:
    """Distinct descriptions, in file order (several binary packages can share one text)."""
    field = f"Description-{language}: "
    packages, seen = [], set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for stanza in f.read().split("\n\n"):
            name, lines, in_desc = None, [], False
            for line in stanza.splitlines():
                if line.startswith("Package: "):
                    name = line[9:].strip()
                elif line.startswith(field):
                    lines, in_desc = [line[len(field):].strip()], True
                elif in_desc and line.startswith(" "):
                    text = line[1:]
                    lines.append("" if text.strip() == "." else text.strip())
                elif in_desc:
                    in_desc = False
            if not name or not lines or not lines[0]:
                continue
            body = join_lines([part for part in lines[1:] if part]).strip()
            if not body or body in seen:
                continue
            seen.add(body)
            packages.append(Package(name, lines[0], body))
    return packages


def load_packages(language: str = "en", echo=print) -> list[Package]:
    return parse_translation(fetch_translation(language, echo=echo), language)
