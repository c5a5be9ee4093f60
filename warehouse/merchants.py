"""Merchants and their API keys in PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

API_KEY_PREFIX = "sk_test_"


def hash_api_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


async def create_merchant(
    conn: asyncpg.Connection | asyncpg.Pool,
    merchant_id: str,
    legal_name: str,
    state_code: str,
    *,
    gstin: str | None = None,
) -> str:
    """Create (or keep) a merchant and issue it a new API key, returned once, stored hashed."""
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    await conn.execute(
        """INSERT INTO merchants (merchant_id, legal_name, state_code, gstin, kyc_status)
           VALUES ($1, $2, $3, $4, 'verified') ON CONFLICT (merchant_id) DO NOTHING""",
        merchant_id,
        legal_name,
        state_code,
        gstin,
    )
    await conn.execute(
        "INSERT INTO api_keys (key_hash, key_prefix, merchant_id) VALUES ($1, $2, $3)",
        hash_api_key(api_key),
        api_key[: len(API_KEY_PREFIX) + 4],
        merchant_id,
    )
    return api_key


async def merchant_for_key(pool: asyncpg.Pool, api_key: str) -> str | None:
    """The active merchant owning an unrevoked ``api_key``, or ``None``."""
    merchant_id: str | None = await pool.fetchval(
        """SELECT k.merchant_id FROM api_keys k JOIN merchants m USING (merchant_id)
           WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND m.active""",
        hash_api_key(api_key),
    )
    return merchant_id
