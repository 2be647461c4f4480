"""Database sessions that do not turn a database hiccup into "400 Bad Request".

Django's database session store reports any database error during an update as UpdateError,
which SessionMiddleware answers with SessionInterrupted (400), as if the user had logged out
in another tab. With SESSION_SAVE_EVERY_REQUEST most saves only refresh the idle timer:
when such a save meets a connection error, the page already built is still sent (the timer
is refreshed on the next request). A save that carries changed session data re-raises the
database error, so the clinician sees the server-error page instead of a misleading 400.
"""

from __future__ import annotations

import logging

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.db import InterfaceError, OperationalError

logger = logging.getLogger("config.sessions")


class SessionStore(db.SessionStore):
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

    def _connection_lost(self, error: Exception) -> None:
        if self.modified:
            raise error
        logger.warning("session refresh skipped: database unavailable (%s)", error)
