"""The collector's error tree, grouped by what the operator (or the caller) must do.

    CollectorError
    ├── ConfigError            bad settings or bad command input: fix the input; exit code 2
    ├── TransientError         try again later; the outcome of the failed call is unknown
    │   ├── ExchangeUnavailable    timeouts, connection resets, 5xx, -1001/-1006/-1007/-1016,
    │   │   │                      truncated or non-JSON bodies
    │   │   └── OutcomeUnknown     a TRADE request (an order, a short) whose outcome could not be
    │   │                          resolved: look at the account before trying again
    │   ├── RateLimited            429: send nothing before ``retry_after`` seconds have passed
    │   ├── Banned                 418: send nothing before ``until``
    │   └── DatabaseUnavailable    the database cannot be reached right now
    ├── ExchangeRejected       4xx with an exchange code (bad symbol, bad parameter, bad key):
    │   │                      a bug or bad input, never retried
    │   └── SymbolRefused      -7012 / -7013 / -1121 for a symbol: the exchange will not serve this
    │                          symbol's market data (gone, or past its exercise time): stop asking
    ├── OrderNotPlaced         a TRADE request without an answer that the account shows did not
    │                          take effect: safe to send again
    ├── ParseError             a response that does not follow the API: names endpoint and field
    └── DatabaseError          the database refused a statement (a schema not migrated, a bug):
                               not retried

Library exceptions (aiohttp, psycopg, SQLAlchemy) are mapped to these at the boundary where they
occur (the exchange client, the store), with ``raise ... from exc``; nothing above the boundary
sees a library exception.
"""

from __future__ import annotations

from datetime import datetime


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ConfigError(CollectorError):
    """Bad configuration or command input. The message is one line meant for the operator."""


class TransientError(CollectorError):
    """Retry later: the failure is expected to pass by itself."""


class ExchangeUnavailable(TransientError):
    """The exchange did not give a usable answer (network, timeout, 5xx, bad body)."""

    def __init__(
        self, message: str, *, endpoint: str | None = None, status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.code = code


class OutcomeUnknown(ExchangeUnavailable):
    """A request that changes the account got no usable answer, and asking the account could not
    tell whether it took effect. It was not retried: doing it again might do it twice."""


class OrderNotPlaced(CollectorError):
    """A TRADE request got no usable answer, and the account shows it did not take effect: nothing
    was done, so it is safe to try again."""


class RateLimited(TransientError):
    """HTTP 429: the request-weight or raw-request limit was exceeded."""

    def __init__(self, message: str, *, retry_after: float, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.endpoint = endpoint


class Banned(TransientError):
    """HTTP 418: the IP is banned until ``until`` (aware UTC)."""

    def __init__(self, message: str, *, until: datetime, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.until = until
        self.endpoint = endpoint


class DatabaseUnavailable(TransientError):
    """The database connection failed or was lost; nothing in the failed transaction was kept."""


class DatabaseError(CollectorError):
    """The database answered but refused a statement (missing table, constraint, bad SQL)."""


class ExchangeRejected(CollectorError):
    """The exchange refused the request with a 4xx and an error code. Never retried."""

    def __init__(self, message: str, *, code: int | None, status: int, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.endpoint = endpoint


class SymbolRefused(ExchangeRejected):
    """The exchange refused a request for ``symbol`` because of the symbol itself (it does not exist,
    is past its exercise time, or is unknown): asking again will not help."""

    def __init__(
        self, message: str, *, symbol: str, code: int | None, status: int, endpoint: str | None = None
    ) -> None:
        super().__init__(message, code=code, status=status, endpoint=endpoint)
        self.symbol = symbol

    @property
    def reason(self) -> str:
        """One line for the operator and the database: code, what it means, where it was said."""
        meaning = SYMBOL_REFUSALS.get(self.code or 0, "refused")
        return f"{self.code} {meaning} (answer to {self.endpoint})"


# Exchange codes that refuse a symbol for good (JEX-FIELD-NOTES.md).
SYMBOL_REFUSALS = {-7012: "option does not exist", -7013: "option past its exercise time", -1121: "invalid symbol"}


class ParseError(CollectorError):
    """A response that does not follow the API. Nothing from it is stored.

    ``entry`` names the list entry at fault (``[3] BTC0925CALL``) when the response is a list.
    """

    def __init__(self, endpoint: str, field: str, problem: str, *, entry: str | None = None) -> None:
        where = f"{endpoint} entry {entry}" if entry else endpoint
        super().__init__(f"{where}: field {field!r}: {problem}")
        self.endpoint = endpoint
        self.field = field
        self.problem = problem
        self.entry = entry

    def at(self, entry: str) -> ParseError:
        """The same error, naming the list entry it was found in."""
        return ParseError(self.endpoint, self.field, self.problem, entry=entry)
