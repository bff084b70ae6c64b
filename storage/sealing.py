"""Addresses sealed at rest: phone numbers, chat ids and web chat tokens are stored encrypted.

`Sealed` is a column type that encrypts on the way into the database and decrypts on the way out
(AES-256-GCM, a fresh random nonce per value), so code above storage sees plain addresses and a
copy of the database holds none. Lookups never compare sealed values (they differ every time):
they go through the keyed HMAC `address_key` next to each address (bot.privacy).

The key lives outside the database (config or a 0600 key file). It reaches the column type
through the engine's dialect: `attach(dialect, sealer)` is called once per engine by
storage.db.Database; an engine without a sealer refuses to read or write an address rather than
store it in clear."""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text, TypeDecorator
from sqlalchemy.engine import Dialect

PREFIX = "s1:"
"""Version tag of the sealed format: s1: base64url(nonce ‖ ciphertext ‖ tag)."""
_NONCE_BYTES = 12
_AAD = b"brukardialog:address"
_DIALECT_ATTRIBUTE = "brukardialog_sealer"
KEY_BYTES = 32


class SealingError(Exception):
    """An address could not be sealed or opened (no key configured, or the wrong key)."""


class Sealer:
    """Seals and opens short texts with one AES-256-GCM key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the address key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer(key=<hidden>)"

    def seal(self, plain: str) -> str:
        """The sealed form of `plain`: different every call."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode("utf-8"), _AAD)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        """The plain text of a sealed value; raises SealingError for a wrong key or a bad value."""
        if not sealed.startswith(PREFIX):
            raise SealingError("a stored address is not sealed (run `brukardialog db upgrade`)")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :].encode("ascii"))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD)
        except (InvalidTag, ValueError) as e:
            raise SealingError(
                "a stored address cannot be opened with the configured address key"
            ) from e
        return plain.decode("utf-8")


def attach(dialect: Dialect, sealer: Sealer | None) -> None:
    """Let `Sealed` columns of this dialect's engine use `sealer`."""
    setattr(dialect, _DIALECT_ATTRIBUTE, sealer)


def sealer_of(dialect: Dialect) -> Sealer:
    """The sealer attached to a dialect; SealingError if there is none."""
    sealer: Sealer | None = getattr(dialect, _DIALECT_ATTRIBUTE, None)
    if sealer is None:
        raise SealingError(
            "addresses cannot be read or written: no address key is configured for this database"
        )
    return sealer


class Sealed(TypeDecorator[str]):
    """A text column stored sealed (see the module docstring)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        """The value sealed with the dialect's sealer; raises SealingError if there is none."""
        if value is None:
            return None
        return sealer_of(dialect).seal(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        """The stored value opened with the dialect's sealer; SealingError if there is none."""
        if value is None:
            return None
        return sealer_of(dialect).open(str(value))
