"""Early-warning notifications: one JSON POST to the operator's URL per warning raised or lowered.

The body: `{"event": "raised" | "lowered", "source": <process>, "warning": {signal, since, last,
value, baseline, score}}` (times in POSIX seconds). One attempt with a short timeout, no retries:
a warning that cannot be delivered is still on `/metrics` (`kaipiao_early_warning`) and in
`kaipiao status`, and a notifier that queued retries would deliver stale news.

The outbound call is `post_json`, alone on purpose: the same care as webhooks (a timeout, no
redirects followed, the answer read and dropped), and the one place an outbound-request policy
(allowed schemes and destinations, against SSRF) has to be applied when it exists.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from kaipiao.warn.online import Warning

log = logging.getLogger("kaipiao.warn")


async def post_json(url: str, body: dict[str, Any], timeout_s: float) -> int | None:
    """POST `body` as JSON to `url`; the HTTP status, or None if no answer came."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=json.dumps(body).encode(), allow_redirects=False,
                         headers={"Content-Type": "application/json"}) as answer,
        ):  # fmt: skip
            await answer.read()
            return answer.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("early-warning notification to %s failed: %s", url, type(exc).__name__)
        return None


class Notifier:
    """Sends raised and lowered warnings to `url` (nothing when `url` is None)."""

    def __init__(self, url: str | None, source: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.source = source
        self.timeout_s = timeout_s
        self.sent = 0

    async def notify(self, event: str, warning: Warning) -> None:
        if self.url is None:
            return
        body = {"event": event, "source": self.source, "warning": warning.to_json()}
        status = await post_json(self.url, body, self.timeout_s)
        if status is not None and 200 <= status < 300:
            self.sent += 1
        elif status is not None:
            log.warning("early-warning notification to %s answered %d", self.url, status)
