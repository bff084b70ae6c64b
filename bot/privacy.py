"""Keyed pseudonyms: how a phone number or chat id is found again without being stored readable.

Inbound messages are matched on `address_key`, an HMAC-SHA256 under a key that lives only in
config or a key file, never in the database: a copy of the database alone cannot be searched for
a known phone number."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
import uuid
from pathlib import Path

KEY_BYTES = 32
MIN_KEY_BYTES = 16

_PHONE = re.compile(r"\+?[\d\s().\-/]+")
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]")


def normalize_address(address: str) -> str:
    """The canonical form an address is keyed on: trimmed, NFC, phone separators removed."""
    address = unicodedata.normalize("NFC", address.strip())
    if _PHONE.fullmatch(address):
        address = _PHONE_SEPARATORS.sub("", address)
    return address


class Pseudonymizer:
    """Address keys (keyed HMAC) and random respondent ids."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<hidden>)"

    def address_key(self, channel: str, address: str) -> str:
        """HMAC-SHA256 (hex) of "channel:address", the address normalized first."""
        message = f"{channel}:{normalize_address(address)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def respondent_id(self) -> str:
        """A fresh random respondent id: nothing about the person can be derived from it."""
        return str(uuid.uuid4())


def parse_key(text: str) -> bytes:
    """A key written as hex, as in the key file or the environment."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as e:
        raise ValueError("the key is not hexadecimal") from e
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the key must be at least {MIN_KEY_BYTES} bytes")
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key in `path` (hex); a new random key is written there (mode 0600) if none exists.

    Losing this file makes every stored address key unmatchable: back it up with the database,
    but not inside it."""
    try:
        return parse_key(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(KEY_BYTES)
    # Written in full under a temporary name, then linked into place: a process starting at the
    # same moment sees either no file or a complete one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return parse_key(path.read_text(encoding="ascii"))
    finally:
        tmp.unlink(missing_ok=True)
    return key
