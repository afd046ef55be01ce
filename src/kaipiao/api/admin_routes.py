"""Operator routes for credentials: rotate and revoke seller and operator keys, rotate a
seller's webhook secret. Operator keys only; every new secret is in the answer once and never
again (only its hash, or for the webhook secret the secret itself, is stored)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kaipiao.api.auth import AdminDep
from kaipiao.api.routes import AUTH, _problems
from kaipiao.services import keys
from kaipiao.store.documents import json_time
from kaipiao.store.sellers import KeyInfo

router = APIRouter(prefix="/v1/admin", tags=["admin"])
SellerId = Annotated[str, Path(pattern=r"^sel_[0-9a-f]{16}$")]
KeyId = Annotated[str, Path(pattern=r"^key_[0-9a-f]{16}$")]
MAX_OVERLAP_S = int(keys.MAX_OVERLAP.total_seconds())


class RotateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    overlap_s: Annotated[int, Field(ge=0, le=MAX_OVERLAP_S)] = Field(
        default=int(keys.DEFAULT_OVERLAP.total_seconds()),
        description="Seconds the replaced key (or secret) keeps working.",
    )


def _key(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.id, "seller_id": info.seller_id, "prefix": info.prefix,
        "is_admin": info.is_admin, "created_at": json_time(info.created_at),
        "expires_at": json_time(info.expires_at), "revoked_at": json_time(info.revoked_at),
    }  # fmt: skip


def _new_key(new: keys.NewKey) -> dict[str, Any]:
    return {"key_id": new.key_id, "api_key": new.api_key,
            "previous_expire_at": json_time(new.previous_expire_at)}  # fmt: skip


@router.get("/sellers/{seller_id}/keys", responses=_problems(404, 413, 415, 422, *AUTH))
async def seller_keys(seller_id: SellerId, admin: AdminDep, request: Request) -> JSONResponse:
    """A seller's API keys (ids and prefixes, never the keys)."""
    found = await keys.list_keys(request.app.state.database, seller_id)
    return JSONResponse({"data": [_key(k) for k in found]})


@router.post(
    "/sellers/{seller_id}/keys/rotate",
    status_code=201,
    responses=_problems(404, 413, 415, 422, *AUTH),
)
async def rotate_seller_key(
    seller_id: SellerId, body: RotateCreate, admin: AdminDep, request: Request
) -> JSONResponse:
    """A new key for the seller, shown once; its other keys end after `overlap_s`."""
    state = request.app.state
    new = await keys.rotate_key(
        state.database, seller_id, now=state.clock(), overlap=timedelta(seconds=body.overlap_s)
    )
    state.key_cache.forget(seller_id=seller_id)
    return JSONResponse(_new_key(new), status_code=201)


@router.post("/sellers/{seller_id}/keys/revoke", responses=_problems(404, 413, 415, 422, *AUTH))
async def revoke_seller_keys(
    seller_id: SellerId, admin: AdminDep, request: Request
) -> JSONResponse:
    """Revoke every live key of the seller, at once."""
    state = request.app.state
    done = await keys.revoke(state.database, now=state.clock(), seller_id=seller_id)
    state.key_cache.forget(seller_id=seller_id)
    return JSONResponse({"revoked": done})


@router.post("/keys/{key_id}/revoke", responses=_problems(404, 413, 415, 422, *AUTH))
async def revoke_key(key_id: KeyId, admin: AdminDep, request: Request) -> JSONResponse:
    """Revoke one key (a seller's or an operator's), at once."""
    state = request.app.state
    done = await keys.revoke(state.database, now=state.clock(), key_id=key_id)
    state.key_cache.clear()
    return JSONResponse({"revoked": done})


@router.post(
    "/sellers/{seller_id}/webhook-secret/rotate",
    status_code=201,
    responses=_problems(404, 413, 415, 422, *AUTH),
)
async def rotate_webhook_secret(
    seller_id: SellerId, body: RotateCreate, admin: AdminDep, request: Request
) -> JSONResponse:
    """A new webhook signing secret, shown once; deliveries carry both signatures for
    `overlap_s`."""
    state = request.app.state
    new = await keys.rotate_webhook_secret(
        state.database, seller_id, now=state.clock(), overlap=timedelta(seconds=body.overlap_s)
    )
    return JSONResponse(
        {"webhook_secret": new.webhook_secret,
         "previous_valid_until": json_time(new.previous_valid_until)}, status_code=201,
    )  # fmt: skip


@router.get("/operator-keys", responses=_problems(*AUTH))
async def operator_keys(admin: AdminDep, request: Request) -> JSONResponse:
    """The operator keys (ids and prefixes, never the keys)."""
    found = await keys.list_keys(request.app.state.database, None)
    return JSONResponse({"data": [_key(k) for k in found]})


@router.post("/operator-keys/rotate", status_code=201, responses=_problems(413, 415, 422, *AUTH))
async def rotate_operator_key(
    body: RotateCreate, admin: AdminDep, request: Request
) -> JSONResponse:
    """A new operator key, shown once; the other operator keys end after `overlap_s`."""
    state = request.app.state
    new = await keys.rotate_key(
        state.database, None, now=state.clock(), overlap=timedelta(seconds=body.overlap_s)
    )
    state.key_cache.forget(admin=True)
    return JSONResponse(_new_key(new), status_code=201)
