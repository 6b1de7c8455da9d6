"""What a pane's thread worker turns into a message rather than a crash.

Its own module, light to import: the Ingest pane, which the console opens on, needs it without
the polling base (`screens.pane`) and the harness modules that base reads the clock from.
"""

import sqlite3

from engine.core.errors import CraError

# Refusals, a busy database, I/O.
WORKER_ERRORS: tuple[type[Exception], ...] = (CraError, sqlite3.Error, OSError)
