"""Patient searches without names in URLs.

The search form posts its text; the text is kept in the session under a short random token, and
the result pages are addressed by that token (`?s=…`), so proxy and server logs, browser history
and Referer headers never carry a patient's name. A token lasts SEARCH_TOKEN_SECONDS.
"""

from __future__ import annotations

import secrets
import time

from django.http import HttpRequest

SESSION_KEY = "patient_searches"
SEARCH_TOKEN_SECONDS = 15 * 60
KEPT_SEARCHES = 5


def remember(request: HttpRequest, query: str) -> str:
    now = time.time()
    searches = {token: entry for token, entry in request.session.get(SESSION_KEY, {}).items()
                if now - entry[1] < SEARCH_TOKEN_SECONDS}
    token = secrets.token_urlsafe(9)
    searches[token] = [query, now]
    newest = sorted(searches.items(), key=lambda item: item[1][1])[-KEPT_SEARCHES:]
    request.session[SESSION_KEY] = dict(newest)
    return token


def recall(request: HttpRequest, token: str) -> str | None:
    """The search text of a token, or None if unknown or expired."""
    entry = request.session.get(SESSION_KEY, {}).get(token)
    if not entry or time.time() - entry[1] >= SEARCH_TOKEN_SECONDS:
        return None
    return entry[0]
