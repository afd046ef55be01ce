"""Pages from templates: one Jinja2 environment (autoescaped), the language of the request,
security headers on every page, and the overview's charts drawn as SVG on the server."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from kaipiao.api.console.i18n import DEFAULT, LANGS, word

LANG_COOKIE = "kaipiao_lang"
# Forms post; the one script is the overview's refresh (static/refresh.js), from this origin.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kaipiao.api.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["chart"] = bar_chart
    return env


def language(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT
    return wanted if wanted in LANGS else DEFAULT


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    html = environment().get_template(template).render(
        lang=lang, t=lambda key: word(key, lang), request=request,
        path=request.url.path, **context,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax",
                            httponly=True, path="/console")  # fmt: skip
    return response


def bar_chart(points: list[tuple[str, int]], title: str, width: int = 600,
              height: int = 120) -> Markup:  # fmt: skip
    """A bar per point, scaled to the largest, with the title as the accessible name and each
    bar's label and value in its tooltip."""
    most = max((value for _, value in points), default=0) or 1
    step = width / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = round(value / most * (height - 20), 1)
        bars.append(
            f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h}" class="bar"><title>{escape(label)}: {value}</title></rect>'
        )
    total = sum(value for _, value in points)
    return Markup(  # noqa: S704 - every interpolated text is escaped above
        f'<svg role="img" aria-label="{escape(title)}: {total}" viewBox="0 0 {width} {height}" '
        f'width="100%" height="{height}" class="chart"><title>{escape(title)}</title>'
        f'<text x="2" y="12" class="axis">max {most}</text>{"".join(bars)}</svg>'
    )
