"""Intake administration used by the operator CLI: agencies and their API keys."""

from __future__ import annotations

import asyncpg

from services.common.contracts import Channel, Role
from services.common.db import create_pool
from services.common.reference import reference
from services.intake.adapters.repository import provision_agency

DEMO_CHANNELS: tuple[tuple[str, str, Channel], ...] = (
    ("hotline-12345", "12345 政务服务便民热线", Channel.HOTLINE_12345),
    ("gov-portal", "区政府门户网站", Channel.GOV_PORTAL),
    ("media-desk", "区融媒体中心", Channel.MEDIA),
    ("inspection-team", "明察暗访组", Channel.INSPECTION),
)


async def add_agency(
    dsn: str,
    agency_id: str,
    name: str,
    role: Role,
    channel: str | None = None,
    unit_id: str | None = None,
    rate: int = 600,
) -> str:
    pool = await create_pool(dsn, "intake")
    try:
        async with pool.acquire() as conn:
            return await provision_agency(
                conn, agency_id, name, role, channel=channel, unit_id=unit_id, rate_per_minute=rate
            )
    finally:
        await pool.close()


async def provision_demo(dsn: str) -> dict[str, str]:
    """Demo agencies: the filing channels, the supervisory office and one agency per unit. Returns their keys."""
    pool = await create_pool(dsn, "intake")
    keys: dict[str, str] = {}
    try:
        async with pool.acquire() as conn:
            conn: asyncpg.Connection
            for agency_id, name, channel in DEMO_CHANNELS:
                keys[agency_id] = await provision_agency(conn, agency_id, name, Role.CHANNEL, channel=channel.value)
            keys["jiufeng-office"] = await provision_agency(conn, "jiufeng-office", "区纠风办", Role.SUPERVISOR)
            for unit in reference().units.values():
                keys[f"unit-{unit.id}"] = await provision_agency(
                    conn, f"unit-{unit.id}", unit.zh, Role.UNIT, unit_id=unit.id
                )
    finally:
        await pool.close()
    return keys
