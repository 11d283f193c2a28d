"""Encryption of state at rest, byte-compatible with Spawn's Cloak vault (spawn-protocol.md 5.4).

Layout written (AES-256-GCM, AAD ``b"AES256GCM"``)::

    0x01 | len(tag) | tag (ASCII) | IV (16 random bytes) | GCM tag (16) | ciphertext

The Cloak tag doubles as key id: key id ``V1`` gives tag ``AES.GCM.V1``, so our output with ``V1`` is exactly
what the Spawn proxy writes and reads. Another key id ``X`` writes ``AES.GCM.X``; keeping old keys under their
ids (``SPAWN_STATESTORE_OLD_KEYS``) lets a key rotate without re-encrypting stored rows. Cloak's secondary cipher
(``0x01 | 0x0A | "AES.CTR.V1" | IV (16) | ciphertext``, no authentication) is accepted for decryption only.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher as _BlockCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, DecryptionError

KEY_BYTES = 32
"""AES-256 keys are exactly 32 bytes (Cloak fixes ``:aes_256_gcm``)."""
AAD = b"AES256GCM"
"""The constant additional authenticated data of Cloak's AES.GCM cipher."""
KEY_HELP = "make one with `spawn-celery keygen` or `openssl rand -base64 32`"
"""How to make a key; appended to every key configuration error."""

_TYPE_BYTE = 0x01
_GCM_PREFIX = "AES.GCM."
_CTR_PREFIX = "AES.CTR."
_IV_BYTES = 16
_TAG_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def generate_key() -> str:
    """Return a new random key: base64 of 32 random bytes, ready for ``SPAWN_STATESTORE_KEY``."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


class Cipher:
    """AES-256-GCM in Cloak's byte layout, with key ids for rotation.

    Args:
        keys: key id -> 32-byte key. Every key decrypts; only ``current`` encrypts.
        current: the id of the key that new ciphertexts use.

    Raises:
        ValueError: a key is not 32 bytes, a key id is not 1-64 of ``[A-Za-z0-9._-]``, or ``current`` is unknown.
    """

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        """Check and keep the keys (see the class docstring)."""
        for key_id, key in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")
        if current not in keys:
            raise ValueError(f"current key id {current!r} is not among the keys ({', '.join(keys) or 'none'})")
        self._keys = {key_id: bytes(key) for key_id, key in keys.items()}
        self._aead = {key_id: AESGCM(key) for key_id, key in self._keys.items()}
        self._current = current
        tag = (_GCM_PREFIX + current).encode("ascii")
        self._header = bytes([_TYPE_BYTE, len(tag)]) + tag

    @property
    def key_id(self) -> str:
        """The id of the key new ciphertexts are written with."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this cipher can decrypt, the current one first."""
        return (self._current, *(key_id for key_id in self._keys if key_id != self._current))

    def encrypt(self, plain: bytes) -> bytes:
        """Encrypt ``plain`` with the current key and a fresh random IV.

        Args:
            plain: the bytes to protect (the ``value`` of the state ``Any``).

        Returns:
            ``0x01 | len(tag) | tag | IV(16) | GCM tag(16) | ciphertext``.
        """
        iv = secrets.token_bytes(_IV_BYTES)
        sealed = self._aead[self._current].encrypt(iv, plain, AAD)  # ciphertext | tag
        return self._header + iv + sealed[-_TAG_BYTES:] + sealed[:-_TAG_BYTES]

    def decrypt(self, blob: bytes) -> bytes:
        """Decrypt a Cloak ciphertext (AES.GCM, or legacy AES.CTR), choosing the key by its tag.

        Args:
            blob: bytes as written by :meth:`encrypt` or by the Spawn proxy.

        Returns:
            The plaintext.

        Raises:
            DecryptionError: the layout is not Cloak's, the key id is unknown, or authentication fails (wrong
                key or corrupt data).
        """
        blob = bytes(blob)
        if len(blob) < 2 or blob[0] != _TYPE_BYTE:
            raise DecryptionError("stored value is not a Cloak ciphertext (first byte is not 0x01)")
        end = 2 + blob[1]
        if len(blob) < end or end == 2:
            raise DecryptionError("stored value is truncated inside its Cloak tag")
        try:
            tag = blob[2:end].decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionError("stored value has a non-ASCII Cloak tag") from None
        body = blob[end:]
        if tag.startswith(_GCM_PREFIX):
            key_id = tag[len(_GCM_PREFIX) :]
            self._key_for(key_id, tag)
            if len(body) < _IV_BYTES + _TAG_BYTES:
                raise DecryptionError(f"stored {tag} value is truncated ({len(blob)} bytes)")
            iv, mac = body[:_IV_BYTES], body[_IV_BYTES : _IV_BYTES + _TAG_BYTES]
            try:
                return self._aead[key_id].decrypt(iv, body[_IV_BYTES + _TAG_BYTES :] + mac, AAD)
            except InvalidTag:
                raise DecryptionError(
                    f"{tag} value does not authenticate: the key with id {key_id!r} is not the one it was "
                    "written with, or the data is corrupt"
                ) from None
        if tag.startswith(_CTR_PREFIX):
            key = self._key_for(tag[len(_CTR_PREFIX) :], tag)
            if len(body) < _IV_BYTES:
                raise DecryptionError(f"stored {tag} value is truncated ({len(blob)} bytes)")
            decryptor = _BlockCipher(algorithms.AES(key), modes.CTR(body[:_IV_BYTES])).decryptor()
            return decryptor.update(body[_IV_BYTES:]) + decryptor.finalize()
        raise DecryptionError(f"stored value uses cipher tag {tag!r}; only AES.GCM.* and AES.CTR.* are supported")

    def _key_for(self, key_id: str, tag: str) -> bytes:
        """Return the key for ``key_id`` or explain how to configure it."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise DecryptionError(
                f"stored value was written with key id {key_id!r} (tag {tag}) but only "
                f"{', '.join(self.key_ids)} are configured; add that key to SPAWN_STATESTORE_OLD_KEYS as "
                f"'{key_id}:<base64>'"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        """Build the cipher from ``statestore_key``, ``statestore_key_id`` and ``statestore_old_keys``.

        Args:
            settings: the process settings.

        Returns:
            A cipher that writes with the current key and reads with every configured key.

        Raises:
            ConfigError: a key is missing or malformed, or an old key entry is not ``id:base64``. Key material is
                never echoed in the message.
        """
        current = settings.statestore_key_id.strip() or "V1"
        _check_key_id("SPAWN_STATESTORE_KEY_ID", current)
        keys = {current: _decode_key("SPAWN_STATESTORE_KEY", settings.statestore_key, "")}
        for entry in (part.strip() for part in settings.statestore_old_keys.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                raise ConfigError("SPAWN_STATESTORE_OLD_KEYS", _hidden(entry), "each entry must be id:base64")
            _check_key_id("SPAWN_STATESTORE_OLD_KEYS", key_id)
            key = _decode_key("SPAWN_STATESTORE_OLD_KEYS", encoded, f"key {key_id!r} ")
            if keys.get(key_id, key) != key:
                raise ConfigError(
                    "SPAWN_STATESTORE_OLD_KEYS", _hidden(entry), f"key id {key_id!r} is given twice with different keys"
                )
            keys[key_id] = key
        return cls(keys, current)


def _check_key_id(variable: str, key_id: str) -> None:
    """Refuse a key id that cannot become a Cloak tag."""
    if not _KEY_ID.fullmatch(key_id):
        raise ConfigError(variable, key_id, "a key id must be 1-64 characters of A-Z a-z 0-9 . _ -")


def _decode_key(variable: str, value: str, which: str) -> bytes:
    """Decode one base64 key of exactly 32 bytes, or say how to make one."""
    text = value.strip()
    if not text:
        raise ConfigError(variable, "", f"{which}is required: base64 of {KEY_BYTES} random bytes; {KEY_HELP}")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(variable, _hidden(text), f"{which}is not valid base64; {KEY_HELP}") from None
    if len(key) != KEY_BYTES:
        reason = f"{which}decodes to {len(key)} bytes, AES-256 needs exactly {KEY_BYTES}; {KEY_HELP}"
        raise ConfigError(variable, _hidden(text), reason)
    return key


def _hidden(secret: str) -> str:
    """Describe a secret value without showing it."""
    return f"<{len(secret)} characters, hidden>"
