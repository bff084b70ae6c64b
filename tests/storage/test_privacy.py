from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.privacy import (
    KEY_BYTES,
    Pseudonymizer,
    load_or_create_key,
    normalize_address,
    parse_key,
)
from tests.conftest import TEST_KEY


def test_new_key_file_is_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pseudonym.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key.hex()
    assert load_or_create_key(path) == key
    assert list(path.parent.iterdir()) == [path], "no temporary file is left behind"


def test_existing_key_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text(TEST_KEY.hex() + "\n")
    assert load_or_create_key(path) == TEST_KEY


@pytest.mark.parametrize("content", ["", "zz" * 32, "00" * 8])
def test_bad_key_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    with pytest.raises(ValueError, match="the key"):
        load_or_create_key(path)


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")
    with pytest.raises(ValueError):
        parse_key("abcd")


def test_address_key_is_a_stable_keyed_hmac(pseudonymizer: Pseudonymizer) -> None:
    # Pinned: changing the key derivation would orphan every stored address.
    assert pseudonymizer.address_key("sms", "+46701234567") == (
        "36bb64ed53cb6d2992d128d08afa8f46ddedf2b037a32cc4275ea996a5a2f2f8"
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("sms", "+46701234567"), ("sms", " +46 70-123 45 67 "), True),
        (("sms", "+46701234567"), ("sms", "+46(70)1234567"), True),
        (("sms", "+46701234567"), ("telegram", "+46701234567"), False),
        (("sms", "+46701234567"), ("sms", "+46701234568"), False),
        (("webchat", "AbC-def"), ("webchat", "abc-def"), False),
    ],
)
def test_address_key_normalizes_then_separates(
    pseudonymizer: Pseudonymizer, a: tuple[str, str], b: tuple[str, str], same: bool
) -> None:
    assert (pseudonymizer.address_key(*a) == pseudonymizer.address_key(*b)) is same


def test_address_key_depends_on_the_key(pseudonymizer: Pseudonymizer) -> None:
    other = Pseudonymizer(bytes(32))
    assert other.address_key("sms", "+4670") != pseudonymizer.address_key("sms", "+4670")
    assert len(pseudonymizer.address_key("sms", "+4670")) == 64


def test_normalize_address_leaves_tokens_alone() -> None:
    assert normalize_address(" 123456789 ") == "123456789"
    assert normalize_address("tok en") == "tok en"


def test_respondent_ids_are_random_uuids(pseudonymizer: Pseudonymizer) -> None:
    ids = {pseudonymizer.respondent_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 36 for i in ids)
    assert "key" not in repr(pseudonymizer).replace("key=<hidden>", "")
