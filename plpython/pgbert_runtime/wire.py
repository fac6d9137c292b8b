"""Messages between a backend (host_client.py) and the model host (host.py) over a Unix socket.

A message is a frame '!II' (header bytes, body bytes), a JSON header, then a binary body (vectors: float32 in
this machine's byte order, both ends being on it). A request is answered by exactly one message; an error
travels as {"error": kind, "message": ...} and is raised again, as the same exception class, in the backend.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import select
import socket
import struct

from .bundle import BundleError, NoKnownWords
from .chunker import TooManyChunks
from .memory import NotEnoughMemory

FOLDER = "pgbert_host"  # in the data directory, the server's OS user's alone
SOCKET = os.path.join(FOLDER, "host.sock")
# Settings a model load depends on, besides the bundle's files; and those a request carries to the host.
LOAD_SETTINGS = ("threads", "batch_size", "batch_tokens", "engine", "shared_weights")
SENT_SETTINGS = (*LOAD_SETTINGS, "memory_reserve_mb", "thread_budget", "max_loaded_models")
FRAME = struct.Struct("!II")
MAX_HEADER = 1 << 31


class HostError(Exception):
    """The model host failed while answering (a bug, or it was killed): the message says what to do."""


@functools.cache
def code_version() -> str:
    """A digest of this package's source: a backend talks only to a host running the same pgbert code."""
    digest = hashlib.sha256()
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:16]


def is_on(value, default: bool = True) -> bool:
    """A boolean setting's text ('on'/'off', 'true'/'false', 'yes'/'no', '1'/'0'); None or '' is the default."""
    if value in (None, ""):
        return default
    return str(value).strip().lower() not in ("off", "false", "no", "0")


def address(datadir: str) -> str:
    """The socket's path: absolute, or relative to the data directory (where backends and the host run)
    when the absolute one is longer than a Unix socket address may be."""
    full = os.path.join(datadir, SOCKET)
    return full if len(full.encode()) < 100 else os.path.relpath(full)


ERRORS = {"memory": NotEnoughMemory, "bundle": BundleError, "chunks": TooManyChunks, "vocabulary": NoKnownWords,
          "value": ValueError}


def send(sock: socket.socket, header: dict, body=b"") -> None:
    """body: bytes, or a list of bytes sent one after the other (never joined: a 20 MB text is not copied)."""
    parts = body if isinstance(body, list) else [body]
    data = json.dumps(header, ensure_ascii=False).encode()
    sock.sendall(FRAME.pack(len(data), sum(len(p) for p in parts)) + data)
    for part in parts:
        if part:
            sock.sendall(part)


def pack_texts(texts) -> tuple[list[int], list[bytes]]:
    """Texts as a message body: (their UTF-8 sizes, for the header; the encoded texts)."""
    encoded = [t.encode() for t in texts]
    return [len(e) for e in encoded], encoded


def unpack_texts(sizes: list[int], body) -> list[str]:
    view, start, texts = memoryview(body), 0, []
    for size in sizes:
        texts.append(str(view[start:start + size], "utf-8"))
        start += size
    return texts


def recv(sock: socket.socket, wait=None) -> tuple[dict, bytearray | bytes]:
    """The next message; raises EOFError when the other end closed first. wait(): called whenever the socket
    timed out (a backend's sockets time out every few ms, so that it can check for cancel meanwhile)."""
    size, body_size = FRAME.unpack(_exactly(sock, FRAME.size, wait))
    if size > MAX_HEADER:
        raise HostError(f"a message header of {size} bytes: not a pgbert model host at the other end")
    header = json.loads(_exactly(sock, size, wait))
    return header, _exactly(sock, body_size, wait) if body_size else b""  # a bytearray: not copied again


def _exactly(sock: socket.socket, n: int, wait) -> bytearray:
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], n - got)
        except TimeoutError:  # a socket with a timeout: the backend's, to run wait() meanwhile
            if wait is None:
                raise
            wait()
            continue
        if k == 0:
            raise EOFError("the other end closed the connection")
        got += k
    return buffer


def peer_closed(sock: socket.socket) -> bool:
    """Whether the other end closed: neither side speaks unasked while the other waits, so readable means EOF."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and not sock.recv(1, socket.MSG_PEEK)


def error_reply(exc: Exception) -> dict | None:
    """The reply for an exception a backend knows how to report (None: an unexpected one)."""
    for kind, cls in ERRORS.items():
        if isinstance(exc, cls):
            return {"error": kind, "message": str(exc)}
    return None


def raise_error(reply: dict) -> None:
    raise ERRORS.get(reply["error"], HostError)(reply["message"])
