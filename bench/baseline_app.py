"""The intake baseline: a minimal raw Starlette endpoint that durably inserts the request body.

SQLite with the same pragmas as kaipiao (WAL, synchronous=FULL), or PostgreSQL via asyncpg; one
INSERT and commit per request, then 202. Run by bench/intake.py under the same uvicorn settings
as `kaipiao serve`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

URL = os.environ["BASELINE_DATABASE"]
state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if URL.startswith("sqlite:"):
        db = await aiosqlite.connect(URL.removeprefix("sqlite:"), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
            await db.execute(f"PRAGMA {pragma}")
        await db.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, body TEXT)")
        state["sqlite"] = db
    else:
        pool = await asyncpg.create_pool(URL, min_size=10, max_size=10)
        await pool.execute("CREATE TABLE IF NOT EXISTS raw (id BIGSERIAL PRIMARY KEY, body TEXT)")
        state["pg"] = pool
    yield
    if "sqlite" in state:
        await state["sqlite"].close()
    else:
        await state["pg"].close()


async def accept(request: Request) -> JSONResponse:
    body = (await request.body()).decode()
    if "sqlite" in state:
        db = state["sqlite"]
        cursor = await db.execute("INSERT INTO raw (body) VALUES (?)", (body,))
        row_id = cursor.lastrowid
    else:
        row_id = await state["pg"].fetchval("INSERT INTO raw (body) VALUES ($1) RETURNING id", body)
    return JSONResponse({"id": row_id}, status_code=202)


app = Starlette(routes=[Route("/v1/invoices", accept, methods=["POST"])], lifespan=lifespan)
