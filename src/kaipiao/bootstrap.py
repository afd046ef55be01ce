"""Composition root: turns Settings into the concrete parts (database, platform, signer, secret
box, the engine's and the ledger's configuration). It only wires; `kaipiao.runtime` runs processes
from these parts, and the CLI and the API call both.

Nothing here runs at import time, and nothing here opens a connection until it is used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Awaitable, Callable

from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.engine.early_warning import EarlyWarning
from kaipiao.engine.notify import Notifier
from kaipiao.engine.webhooks import WebhookSender
from kaipiao.engine.worker import WorkerConfig
from kaipiao.ledger.signing import Signer
from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.nuonuo import NuonuoConfig, NuonuoPlatform
from kaipiao.platform.nuonuo.codes import CodeTable, Methods
from kaipiao.platform.outbound import OutboundPolicy, parse_networks
from kaipiao.platform.protocol import TaxPlatform
from kaipiao.platform.router import PlatformRouter, UnresolvedAccount
from kaipiao.services import providers
from kaipiao.services.ledger import CheckpointJob
from kaipiao.services.secrets import SecretBox, SecretError
from kaipiao.store import sellers as seller_store
from kaipiao.store.database import Database
from kaipiao.warn.online import BoardConfig
from kaipiao.warn.telemetry import CallSeries, RateSeries


def database_for(settings: Settings, *, linger_s: float = 0.0) -> Database:
    """The configured store; the default SQLite file's data directory is created if missing."""
    if settings.database_url is None:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Database(settings.resolved_database_url(), linger_s=linger_s)


PRIVATE_FILES = 0o600
PRIVATE_DIRS = 0o700


def loose_files(settings: Settings, most: int = 2000) -> list[str]:
    """What in the data directory (and the configured key files) others than the owner may
    read: the database holds webhook secrets and buyers' details, the key files sign and
    decrypt. kaipiao creates everything 0600 / 0700 (the CLI's umask is 077); this finds what
    an older version, a restore or an operator left looser. Nothing is changed."""
    found: list[str] = []
    paths = [settings.data_dir, settings.ledger_key_path(), settings.secrets_key_path()]
    if settings.data_dir.is_dir():
        paths += sorted(settings.data_dir.rglob("*"))[:most]
    for path in dict.fromkeys(paths):
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            found.append(f"{path} is {stat.S_IMODE(mode):04o}")
    return found


def signer_for(settings: Settings) -> Signer:
    """The deployment's ledger signing key: given inline (KAIPIAO_LEDGER_KEY) or as a file that
    must exist (KAIPIAO_LEDGER_KEY_FILE), else the data directory's, created on first use."""
    if settings.ledger_key is not None:
        pem = settings.ledger_key.get_secret_value().encode()
        return Signer.from_pem(pem, "KAIPIAO_LEDGER_KEY")
    if settings.ledger_key_file is not None:
        return Signer.load(settings.ledger_key_file)
    return Signer.load_or_create(settings.ledger_key_path())


def has_ledger_key(settings: Settings) -> bool:
    """Whether a signing key is configured or already in the data directory."""
    return settings.ledger_key is not None or settings.ledger_key_path().exists()


def secret_box_for(settings: Settings) -> SecretBox:
    """The deployment's key for provider secrets at rest: inline (KAIPIAO_SECRETS_KEY), a file
    that must exist (KAIPIAO_SECRETS_KEY_FILE), else the data directory's, created on first use
    (mode 0600)."""
    if settings.secrets_key is not None:
        return SecretBox(settings.secrets_key.get_secret_value().strip().encode())
    if settings.secrets_key_file is not None:
        return SecretBox.load(settings.secrets_key_file)
    return SecretBox.load_or_create(settings.secrets_key_path())


def provider_account(
    settings: Settings, seller_tax_id: str, credentials: providers.NuonuoCredentials | None
) -> tuple[str, dict[str, str]] | None:
    """What `seller add` stores as the seller's own provider account: None for the deployment's
    default platform, else the Nuonuo settings with their secrets sealed under the deployment's
    key. A secret that cannot be stored is a ServiceError (invalid_provider_account)."""
    if credentials is None:
        return None
    return "nuonuo", providers.nuonuo_settings(credentials, seller_tax_id, secret_box_for(settings))


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        lease_s=settings.lease_s,
        renew_every_s=settings.lease_s / 3,
        max_in_flight=settings.max_in_flight,
        settle_s=settings.settle_s,
        shutdown_grace_s=min(settings.shutdown_grace_s, settings.lease_s),
    )


def early_warning_for(
    settings: Settings,
    source: str,
    *,
    calls: CallSeries | None = None,
    rates: RateSeries | None = None,
    backlog: Callable[[], Awaitable[int]] | None = None,
    breakers_opened: Callable[[], dict[str, int]] | None = None,
) -> EarlyWarning:
    """A process's early warning, with the configured learning, hold time and notifier."""
    config = BoardConfig(learn=settings.warn_learn_s, hold_s=settings.warn_hold_s)
    notifier = Notifier(settings.warn_notify_url, source, settings.warn_notify_timeout_s)
    return EarlyWarning(config, notifier=notifier, calls=calls, rates=rates, backlog=backlog,
                        breakers_opened=breakers_opened)  # fmt: skip


def checkpoint_job(settings: Settings, db: Database, signer: Signer) -> CheckpointJob:
    """Signs ledger checkpoints in `serve` (every API replica, under the deployment's one key;
    workers do not sign)."""
    return CheckpointJob(
        db, signer, utcnow,
        every_s=settings.ledger_checkpoint_s, events=settings.ledger_checkpoint_events,
        published=settings.ledger_published_path() if settings.ledger_publish else None,
    )  # fmt: skip


def _codes(text: str) -> frozenset[str]:
    return frozenset(code.strip() for code in text.split(",") if code.strip())


def nuonuo_config(settings: Settings) -> NuonuoConfig:
    return NuonuoConfig(
        url=settings.nuonuo_url,
        methods=Methods(issue=settings.nuonuo_issue_method),
        codes=CodeTable(duplicate=_codes(settings.nuonuo_duplicate_codes),
                        auth=_codes(settings.nuonuo_auth_codes)),
        callback_url=settings.nuonuo_callback_url,
    )  # fmt: skip


def platform_for(settings: Settings, url: str, db: Database) -> PlatformRouter:
    """The engine's platform: the sandbox protocol at `url` by default, and each seller's own
    provider account (Nuonuo) where it has one."""
    http = HttpSettings(
        read_timeout_s=settings.platform_timeout_s,
        max_connections=max(10, settings.max_in_flight),
    )
    box: SecretBox | None = None

    async def resolve(tax_id: str) -> TaxPlatform | None:
        nonlocal box
        found = await db.read(lambda conn: seller_store.platform_of(conn, tax_id))
        if found is None:
            return None
        name, stored = found
        if name != "nuonuo":
            raise UnresolvedAccount(f"seller {tax_id}: unknown platform {name!r}")
        try:
            box = box or secret_box_for(settings)
            # The process environment is read here, at the edge, for secrets stored as env:NAME.
            account = providers.nuonuo_account(stored, box, os.environ)
        except (SecretError, OSError, ValueError) as exc:
            raise UnresolvedAccount(f"seller {tax_id}: {exc}") from None
        return NuonuoPlatform(account, nuonuo_config(settings), http)

    return PlatformRouter(HttpPlatform(url, http), resolve)


def webhook_sender(settings: Settings, db: Database) -> WebhookSender:
    """The webhook sender, its requests under the deployment's outbound policy."""
    policy = OutboundPolicy(parse_networks(settings.outbound_allow_networks))
    return WebhookSender(db, utcnow, policy=policy)
