"""Which platform each seller issues on, and the provider accounts behind that choice.

A seller without an account of its own issues on the deployment's default platform
(`--platform-url`, kaipiao's sandbox protocol). A Nuonuo seller stores its app key, its seller tax
number and, as secrets (`kaipiao.services.secrets`), its app secret and access token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kaipiao.platform.nuonuo import NuonuoAccount
from kaipiao.services.errors import ServiceError
from kaipiao.services.secrets import SecretBox, SecretError

PLATFORMS = ("default", "nuonuo")


@dataclass(frozen=True, slots=True)
class NuonuoCredentials:
    """As given by an operator: secrets in the clear or as `env:NAME`."""

    app_key: str
    app_secret: str
    access_token: str
    tax_num: str | None = None  # default: the seller's own tax id


def nuonuo_settings(
    credentials: NuonuoCredentials, seller_tax_id: str, box: SecretBox
) -> dict[str, str]:
    """What to store for a Nuonuo seller: secrets sealed, the rest as given."""
    c = credentials
    if not c.app_key:
        raise ServiceError("a Nuonuo seller needs --app-key", "invalid_provider_account")
    try:
        return {
            "app_key": c.app_key,
            "app_secret": box.seal(c.app_secret),
            "access_token": box.seal(c.access_token),
            "tax_num": c.tax_num or seller_tax_id,
        }
    except SecretError as exc:
        raise ServiceError(str(exc), "invalid_provider_account") from None


def nuonuo_account(settings: Mapping[str, str], box: SecretBox,
                   environ: Mapping[str, str]) -> NuonuoAccount:  # fmt: skip
    """The usable account; SecretError says what is missing without showing a secret."""
    return NuonuoAccount(
        app_key=settings["app_key"],
        app_secret=box.open(settings["app_secret"], environ, "the Nuonuo app secret"),
        access_token=box.open(settings["access_token"], environ, "the Nuonuo access token"),
        tax_num=settings["tax_num"],
    )
