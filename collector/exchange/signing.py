"""HMAC-SHA256 request signing for USER_DATA / TRADE endpoints (Binance's scheme, as JEX's)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

Params = Mapping[str, object] | Sequence[tuple[str, object]]


def query_string(params: Params) -> str:
    """The parameters in the order given, form-encoded exactly as they will be sent."""
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    return urlencode([(k, str(v)) for k, v in items])


def sign(params: Params | str, secret: str) -> str:
    """Hex HMAC-SHA256 of the total parameter string with the API secret."""
    payload = params if isinstance(params, str) else query_string(params)
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
