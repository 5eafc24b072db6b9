"""The complainant vault: personal data sealed with a key per complainant, erasable by destroying the key.

Envelope encryption with AES-256-GCM (the ``cryptography`` package): each complainant's fields are
sealed together with a fresh 256-bit data key; the data key is stored wrapped by the intake master
key. The associated data binds each ciphertext to its complainant ref, so sealed values cannot be
swapped between rows. Erasure deletes the wrapped key: the sealed bytes stay, unreadable forever,
and nothing outside intake ever held more than the opaque ref.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import asyncpg
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.intake.randomness import random_bytes

NONCE = 12
KEY = 32  # AES-256


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    phone: str | None
    email: str | None


class Erased(Exception):
    """The complainant's key was destroyed: the data can never be read again."""


class Vault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the intake master key must be 32 bytes (base64 in INTAKE_MASTER_KEY)")
        self._kek = AESGCM(master_key)

    @staticmethod
    def from_base64(value: str) -> Vault:
        return Vault(base64.b64decode(value))

    def seal(self, ref: str, contact: Contact) -> tuple[bytes, bytes]:
        """(sealed contact, wrapped data key)."""
        fresh = random_bytes(KEY + 2 * NONCE)  # the data key and both nonces, fresh from the OS's CSPRNG
        data_key, nonce, key_nonce = fresh[:KEY], fresh[KEY : KEY + NONCE], fresh[KEY + NONCE :]
        plain = orjson.dumps({"name": contact.name, "phone": contact.phone, "email": contact.email})
        sealed = nonce + AESGCM(data_key).encrypt(nonce, plain, f"contact:{ref}".encode())
        wrapped = key_nonce + self._kek.encrypt(key_nonce, data_key, f"key:{ref}".encode())
        return sealed, wrapped

    def open(self, ref: str, sealed: bytes, wrapped: bytes) -> Contact:
        data_key = self._kek.decrypt(wrapped[:NONCE], wrapped[NONCE:], f"key:{ref}".encode())
        plain = AESGCM(data_key).decrypt(sealed[:NONCE], sealed[NONCE:], f"contact:{ref}".encode())
        fields = orjson.loads(plain)
        return Contact(fields["name"], fields["phone"], fields["email"])

    async def read(self, conn: asyncpg.Connection | asyncpg.Pool, ref: str) -> Contact | None:
        """None for an unknown ref; raises Erased when the data was erased."""
        row = await conn.fetchrow(
            "SELECT c.sealed, c.erased_at, k.wrapped_key FROM complainants c "
            "LEFT JOIN complainant_keys k USING (complainant_ref) WHERE c.complainant_ref = $1",
            ref,
        )
        if row is None:
            return None
        if row["wrapped_key"] is None:
            raise Erased(ref)
        return self.open(ref, row["sealed"], row["wrapped_key"])

    @staticmethod
    async def erase(conn: asyncpg.Connection | asyncpg.Pool, ref: str) -> bool:
        """Destroy the complainant's key. True if there was something to erase."""
        found = await conn.fetchval(
            "WITH gone AS (DELETE FROM complainant_keys WHERE complainant_ref = $1 RETURNING complainant_ref) "
            "UPDATE complainants SET erased_at = now() WHERE complainant_ref IN (SELECT complainant_ref FROM gone) "
            "RETURNING true",
            ref,
        )
        return bool(found)
