"""kaipiao's settings: one validated object, read at the edge (the CLI) and passed down.

Every field can be set by a CLI flag or by the environment variable `KAIPIAO_<FIELD>`
(e.g. `KAIPIAO_DATABASE_URL`). Nothing else in the package reads the environment, except that
`bootstrap` hands the process environment to the provider accounts whose secrets are stored as
`env:NAME` references.

A replica in a cluster gets its secrets the way Kubernetes hands them over: as variables
(`KAIPIAO_DATABASE_URL`, `KAIPIAO_LEDGER_KEY`, `KAIPIAO_SECRETS_KEY`) or as files mounted from a
Secret (`KAIPIAO_DATABASE_URL_FILE`, `KAIPIAO_LEDGER_KEY_FILE`, `KAIPIAO_SECRETS_KEY_FILE`). A key
named either way must exist: only the single-host default in the data directory is created on
first use, so two replicas can never each invent a key of their own.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _hosts_as_query(rest: str) -> str:
    """libpq's multi-host form `[user@]h1:5432,h2:5433/db?…` as SQLAlchemy's asyncpg dialect
    takes it: `[user@]/db?host=h1:5432&host=h2:5433&…` (its URL parser reads `5432,h2` as a
    port; asyncpg itself tries the hosts in order and, with `target_session_attrs=read-write`,
    connects only to the one that accepts writes)."""
    authority, _, path = rest.partition("/")
    user, at, hosts = authority.rpartition("@")
    if "," not in hosts:
        return rest
    listed = [h for h in hosts.split(",") if h]
    if any(h.startswith("[") for h in listed):
        raise ValueError("database_url: give IPv6 hosts of a multi-host URL as ?host=[…]:port")
    database, _, query = path.partition("?")
    params = "&".join(f"host={h}" for h in listed)
    query = f"{params}&{query}" if query else params
    return f"{user}{at}/{database}?{query}"


class Settings(BaseSettings):
    """Configuration of a kaipiao process (API, workers or both)."""

    model_config = SettingsConfigDict(env_prefix="KAIPIAO_", extra="forbid", frozen=True)

    data_dir: Path = Path("kaipiao-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file `kaipiao.db` in the data directory.",
    )
    database_url_file: Path | None = Field(
        default=None,
        description="A file holding the database URL (a mounted Secret); read at start-up.",
    )
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    platform_url: str | None = Field(
        default=None,
        description="Tax platform base URL; default: a sandbox platform inside this process.",
    )
    platform_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    idempotency_ttl_days: Annotated[int, Field(ge=1)] = 7
    intake_rate_per_s: Annotated[float, Field(gt=0)] = 200.0
    intake_burst: Annotated[int, Field(ge=1)] = 400
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    rate_limit_url: str | None = Field(
        default=None,
        description="redis://HOST:PORT/DB holding the per-key rate limit shared by every API "
        "replica; default: each process limits on its own (right for one process only).",
    )
    rate_limit_lease: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=10,
        description="Tokens a replica takes from the shared bucket at a time (fewer Redis calls; "
        "unspent ones lapse after a second).",
    )
    auth_failure_burst: Annotated[int, Field(ge=1)] = Field(
        default=20, description="Failed authentications allowed per source address at once."
    )
    auth_failure_rate_per_s: Annotated[float, Field(gt=0)] = Field(
        default=0.5, description="… and refilled at this rate; beyond it: 429 without a lookup."
    )
    console_session_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = Field(
        default=480, description="A console sign-in lasts this long (then sign in again)."
    )
    console_sign_in_per_min: Annotated[int, Field(ge=1)] = Field(
        default=5,
        description="Console sign-in attempts allowed per operator name and address "
        "per minute (each process).",
    )
    header_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="A connection must send a request's headers within this."
    )
    body_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="A request's whole body must arrive within this."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated networks whose X-Forwarded-For / -Proto are believed "
        "(your load balancer's); default: none, the peer address is the client.",
    )
    outbound_allow_networks: str = Field(
        default="",
        description="Comma-separated private networks that webhooks (and any call a seller "
        "steers) may reach, e.g. an on-premise receiver; default: public addresses only.",
    )
    demo_seller: bool = True
    workers: bool = Field(default=True, description="Run the issuing workers in `serve`.")
    lease_s: Annotated[float, Field(gt=1)] = 15.0
    max_in_flight: Annotated[int, Field(ge=1)] = 500
    settle_s: Annotated[float, Field(ge=0)] = Field(
        default=60.0,
        description="The platform's longest time from receiving a request to acting on it.",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="`serve` and `worker` apply migrations when they start; off in a cluster, "
        "where the migration Job does it once (a replica waits, not ready, until it has).",
    )
    shutdown_grace_s: Annotated[float, Field(ge=0)] = Field(
        default=20.0,
        description="On SIGTERM, how long a worker lets platform calls in flight finish before it "
        "releases the rest (at most the lease).",
    )
    log_level: str = "info"
    metrics_port: Annotated[int | None, Field(ge=0, le=65535)] = Field(
        default=None, description="`kaipiao worker`: serve /metrics on this port (0: any free one)."
    )
    ledger_key_file: Path | None = Field(
        default=None,
        description="Ed25519 key (PEM) that signs ledger checkpoints; default: "
        "`ledger-key.pem` in the data directory, created on first start. A file named here "
        "must exist.",
    )
    ledger_key: SecretStr | None = Field(
        default=None,
        description="The ledger signing key itself (PEM text), instead of a file.",
    )
    reconcile_every_s: Annotated[float, Field(gt=0)] = 300.0
    ledger_checkpoint_s: Annotated[float, Field(gt=0)] = 60.0
    ledger_checkpoint_events: Annotated[int, Field(ge=1)] = 10_000
    ledger_published_file: Path | None = Field(
        default=None,
        description="Where signed checkpoints are also appended, outside the database; default: "
        "`ledger-checkpoints.jsonl` in the data directory.",
    )
    ledger_publish: bool = Field(
        default=True,
        description="Append signed checkpoints to the published file; replicas without a shared "
        "volume turn it off (the checkpoints stay in the database either way).",
    )
    drain_s: Annotated[float, Field(ge=0)] = Field(
        default=0.0,
        description="`serve`: on SIGTERM, answer /readyz 503 and keep serving this long before "
        "the listener closes, so load balancers stop sending first (5 in a cluster).",
    )

    secrets_key_file: Path | None = Field(
        default=None,
        description="Key that encrypts provider secrets at rest; default: `secrets.key` in the "
        "data directory, created on first use. A file named here must exist.",
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="The secret-box key itself (Fernet, base64), instead of a file.",
    )
    nuonuo_url: str = Field(
        default="https://sdk.nuonuo.com/open/v1/services",
        description="Nuonuo open API endpoint (the provider's sandbox: "
        "https://sandbox.nuonuocs.cn/open/v1/services).",
    )
    nuonuo_issue_method: str = "nuonuo.OpeMplatform.requestBillingNew"
    nuonuo_duplicate_codes: str = Field(
        default="E9106,6783,6655",
        description="Nuonuo codes meaning 'order number submitted before' (comma-separated).",
    )
    nuonuo_auth_codes: str = Field(
        default="sign_invalid,token_invalid",
        description="Nuonuo codes meaning 'credentials or signature refused' (comma-separated).",
    )
    nuonuo_callback_url: str | None = None
    nuonuo_file_hosts: str = Field(
        default="",
        description="Comma-separated host names the Nuonuo adapter may download invoice files "
        "from (the query result's pdfUrl/xmlUrl); default: none, so no downloads.",
    )
    files_dir: Path | None = Field(
        default=None,
        description="Where invoice files are kept (0600 files); default: `files` in the data "
        "directory.",
    )
    files_fetch: bool = Field(
        default=True,
        description="Fetch issued invoices' files into the file store and email them. Off where "
        "the processes share no file store (replicas with a pod-local `files_dir`): the jobs "
        "then wait, listed, until a process with the shared store fetches them.",
    )
    files_max_bytes: Annotated[int, Field(ge=1024)] = 20 * 1024 * 1024
    files_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    files_every_s: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="How often the file fetcher looks for newly issued invoices."
    )

    warn: bool = Field(
        default=True,
        description="Run the early warning on this process's "
        "per-second series (docs/early-warning.md).",
    )
    warn_learn_s: Annotated[int, Field(ge=5)] = Field(
        default=60, description="Seconds of a signal's values learnt before it may warn."
    )
    warn_hold_s: Annotated[float, Field(gt=0)] = Field(
        default=120.0,
        description="A raised warning is lowered after this long without a "
        "new confirmation (its rest period: one notification per departure).",
    )
    warn_notify_url: str | None = Field(
        default=None,
        description="POST each raised and lowered early warning as JSON here.",
    )
    warn_notify_timeout_s: Annotated[float, Field(gt=0)] = 5.0

    retention_years: int = Field(
        default=10,
        description="Years an invoice is kept in the store before `kaipiao purge` may remove it "
        "(archived first); at least 6.",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_url_file(cls, data: Any) -> Any:
        """The database URL from its mounted file, when one is named and no URL is given."""
        if not isinstance(data, dict):
            return data
        file = data.get("database_url_file")
        if file and not data.get("database_url"):
            try:
                data = {**data, "database_url": Path(file).read_text(encoding="utf-8").strip()}
            except OSError as exc:
                raise ValueError(f"database_url_file: cannot read {file}: {exc}") from None
        return data

    @model_validator(mode="after")
    def _one_source_per_key(self) -> Settings:
        if self.ledger_key is not None and self.ledger_key_file is not None:
            raise ValueError("give the ledger key inline or as a file, not both")
        if self.secrets_key is not None and self.secrets_key_file is not None:
            raise ValueError("give the secrets key inline or as a file, not both")
        return self

    @field_validator("retention_years")
    @classmethod
    def _long_enough(cls, value: int) -> int:
        if value < 6:
            raise ValueError("retention_years must be at least 6: kaipiao keeps tax records "
                             "for six years or more")  # fmt: skip
        return value

    @field_validator("warn_notify_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("warn_notify_url must be an http:// or https:// URL")
        return value

    @field_validator("trusted_proxies", "outbound_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a CIDR network") from None
        return value

    @field_validator("rate_limit_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("rate_limit_url must be redis://…, rediss://… or unix://…")
        return value

    def networks(self, field: str) -> tuple[str, ...]:
        """A comma-separated networks setting as a tuple of CIDR strings."""
        text: str = getattr(self, field)
        return tuple(part.strip() for part in text.split(",") if part.strip())

    @field_validator("data_dir")
    @classmethod
    def _a_directory(cls, value: Path) -> Path:
        # Path() folds `scheme://` to `scheme:/`: a URL given here would become a directory tree.
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/", str(value)):
            raise ValueError("data_dir is a directory, not a database URL (use --database-url)")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            value = "postgresql+asyncpg://" + _hosts_as_query(value.split("://", 1)[1])
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database_url must be postgresql://… or sqlite+aiosqlite:///PATH")
        return value

    def ledger_key_path(self) -> Path:
        return self.ledger_key_file or self.data_dir / "ledger-key.pem"

    def ledger_published_path(self) -> Path:
        return self.ledger_published_file or self.data_dir / "ledger-checkpoints.jsonl"

    def secrets_key_path(self) -> Path:
        return self.secrets_key_file or self.data_dir / "secrets.key"

    def files_path(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    def resolved_database_url(self) -> str:
        """The URL to connect to, SQLite in the data directory when none was configured."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kaipiao.db').resolve()}"
