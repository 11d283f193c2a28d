"""Cipher: Spawn's Cloak byte layout, key ids and key configuration."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher as BlockCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from spawn_celery.cipher import Cipher, generate_key
from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, DecryptionError

SPAWN_EXAMPLE_KEY = "3Jnb0hZiHIzHTOih7t2cTEPEpY98Tu1wvQkPfq/XwqE="
KEY = base64.b64decode(SPAWN_EXAMPLE_KEY)
OTHER_KEY = bytes(range(32))


def v1() -> Cipher:
    return Cipher({"V1": KEY}, "V1")


def test_encrypt_writes_spawns_exact_layout() -> None:
    blob = v1().encrypt(b"hello state")

    header, iv, tag, ciphertext = blob[:12], blob[12:28], blob[28:44], blob[44:]

    assert header == b"\x01\x0aAES.GCM.V1"
    assert len(ciphertext) == len(b"hello state")
    assert AESGCM(KEY).decrypt(iv, ciphertext + tag, b"AES256GCM") == b"hello state"


def test_the_aad_is_part_of_the_authentication() -> None:
    blob = v1().encrypt(b"x")

    with pytest.raises(InvalidTag):
        AESGCM(KEY).decrypt(blob[12:28], blob[44:] + blob[28:44], None)


def test_every_encryption_uses_a_fresh_iv() -> None:
    assert v1().encrypt(b"same") != v1().encrypt(b"same")


def test_decrypts_a_cloak_gcm_blob_built_by_hand() -> None:
    # Given what Cloak 1.1.4 writes: tag, 16-byte IV, GCM tag, ciphertext (AAD "AES256GCM")
    iv = bytes(range(100, 116))
    sealed = AESGCM(KEY).encrypt(iv, b"from elixir", b"AES256GCM")
    blob = b"\x01\x0a" + b"AES.GCM.V1" + iv + sealed[-16:] + sealed[:-16]

    assert v1().decrypt(blob) == b"from elixir"


def test_decrypts_cloaks_legacy_ctr_layout() -> None:
    iv = bytes(16)
    encryptor = BlockCipher(algorithms.AES(KEY), modes.CTR(iv)).encryptor()
    blob = b"\x01\x0aAES.CTR.V1" + iv + encryptor.update(b"old ctr state") + encryptor.finalize()

    assert v1().decrypt(blob) == b"old ctr state"


def test_empty_plaintext_round_trips() -> None:
    assert v1().decrypt(v1().encrypt(b"")) == b""


def test_key_id_becomes_the_tag() -> None:
    cipher = Cipher({"2024-rotation": OTHER_KEY, "V1": KEY}, "2024-rotation")

    blob = cipher.encrypt(b"data")

    assert blob.startswith(bytes([1, 21]) + b"AES.GCM.2024-rotation")
    assert cipher.decrypt(blob) == b"data"
    assert cipher.decrypt(v1().encrypt(b"old")) == b"old"
    assert cipher.key_ids == ("2024-rotation", "V1")


def test_a_wrong_key_is_a_decryption_error() -> None:
    with pytest.raises(DecryptionError, match="does not authenticate"):
        Cipher({"V1": OTHER_KEY}, "V1").decrypt(v1().encrypt(b"x"))


def test_an_unknown_key_id_says_which_key_to_add() -> None:
    blob = Cipher({"V2": OTHER_KEY}, "V2").encrypt(b"x")

    with pytest.raises(DecryptionError, match="'V2'.*SPAWN_STATESTORE_OLD_KEYS"):
        v1().decrypt(blob)


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x02\x0aAES.GCM.V1", b"\x01\x0aAES.GCM", b"\x01\x0aAES.GCM.V1" + bytes(20), b"\x01\x07AES.XYZ" + bytes(40)],
)
def test_malformed_blobs_are_decryption_errors(blob: bytes) -> None:
    with pytest.raises(DecryptionError):
        v1().decrypt(blob)


def test_a_flipped_bit_is_detected() -> None:
    blob = bytearray(v1().encrypt(b"precious"))
    blob[-1] ^= 1

    with pytest.raises(DecryptionError):
        v1().decrypt(bytes(blob))


def test_generate_key_makes_distinct_32_byte_keys() -> None:
    assert len(base64.b64decode(generate_key(), validate=True)) == 32
    assert generate_key() != generate_key()


def test_from_settings_uses_key_id_and_old_keys() -> None:
    settings = Settings(
        statestore_key=base64.b64encode(OTHER_KEY).decode(),
        statestore_key_id="V2",
        statestore_old_keys=f"V1:{SPAWN_EXAMPLE_KEY}",
    )

    cipher = Cipher.from_settings(settings)

    assert cipher.key_id == "V2"
    assert cipher.decrypt(v1().encrypt(b"old")) == b"old"


def test_from_settings_defaults_to_spawns_v1() -> None:
    cipher = Cipher.from_settings(Settings(statestore_key=SPAWN_EXAMPLE_KEY))

    assert cipher.encrypt(b"x").startswith(b"\x01\x0aAES.GCM.V1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, r"SPAWN_STATESTORE_KEY.*required.*spawn-celery keygen.*openssl rand -base64 32"),
        ({"statestore_key": "not base64!"}, "not valid base64.*spawn-celery keygen"),
        ({"statestore_key": base64.b64encode(bytes(16)).decode()}, "16 bytes.*exactly 32.*openssl rand"),
        ({"statestore_key": SPAWN_EXAMPLE_KEY, "statestore_old_keys": "V0"}, "SPAWN_STATESTORE_OLD_KEYS.*id:base64"),
        ({"statestore_key": SPAWN_EXAMPLE_KEY, "statestore_old_keys": "V0:abc"}, "key 'V0' is not valid base64"),
        ({"statestore_key": SPAWN_EXAMPLE_KEY, "statestore_key_id": "has space"}, "SPAWN_STATESTORE_KEY_ID"),
        ({"statestore_key": SPAWN_EXAMPLE_KEY, "statestore_old_keys": f"V1:{generate_key()}"}, "given twice"),
    ],
)
def test_bad_key_configuration_is_a_config_error_that_says_what_to_do(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Cipher.from_settings(Settings(**changes))  # type: ignore[arg-type]


def test_config_errors_never_show_the_key() -> None:
    short = base64.b64encode(b"sixteen byte key").decode()

    with pytest.raises(ConfigError) as raised:
        Cipher.from_settings(Settings(statestore_key=short))

    assert short not in str(raised.value)


def test_constructor_refuses_bad_keys() -> None:
    with pytest.raises(ValueError, match="32"):
        Cipher({"V1": b"short"}, "V1")
    with pytest.raises(ValueError, match="current key id"):
        Cipher({"V1": KEY}, "V2")
