"""Database sessions that do not turn a database hiccup into "400 Bad Request".

Django's database session store reports any database error during an update as UpdateError,
which SessionMiddleware answers with SessionInterrupted (400), as if the user had logged out
in another tab. Most saves only refresh the idle timer (clinic.middleware.IdleSessionTimeoutMiddleware
records the last activity in the session on every active request): when such a save meets a
connection error, the page already built is still sent (the timer is refreshed on the next
request). A save that carries other changed session data re-raises the database error, so the
clinician sees the server-error page instead of a misleading 400.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.db import InterfaceError, OperationalError

from clinic.middleware import LAST_ACTIVITY_KEY

logger = logging.getLogger("config.sessions")


def _without_timer(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != LAST_ACTIVITY_KEY}


class SessionStore(db.SessionStore):
    def load(self) -> dict[str, Any]:
        data = super().load()
        self._loaded = copy.deepcopy(data)  # what the request started with
        return data

    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create=must_create)
        except UpdateError as exc:
            cause = exc.__context__
            if not isinstance(cause, OperationalError | InterfaceError):
                raise  # the row is gone (logged out elsewhere): Django's answer stands
            self._connection_lost(cause)
        except (OperationalError, InterfaceError) as exc:  # raised before Django's own handler (opening the transaction)
            if must_create:
                raise
            self._connection_lost(exc)

    def _only_the_timer_changed(self) -> bool:
        if not self.modified:
            return True
        loaded = getattr(self, "_loaded", None)
        return loaded is not None and _without_timer(self._get_session()) == _without_timer(loaded)

    def _connection_lost(self, error: Exception) -> None:
        if not self._only_the_timer_changed():
            raise error
        logger.warning("session refresh skipped: database unavailable (%s)", error)
