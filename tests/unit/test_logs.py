"""Secrets are masked in every log line, in both formats, whatever characters they hold: the JSON
format masks each value before it is serialised (escaping would hide a secret from a mask applied
to the finished line)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from collector import logs

SECRETS = [
    "plainSecret0123",
    'quo"ted-secret',
    "back\\slash\\secret",
    "non-ascii-sécrét→✓",
    "new\nline secret",
    "tab\tand 'single' quotes",
]


@pytest.fixture
def captured():
    """A handler like setup_logging's, writing to a buffer; the secrets registered, then forgotten."""
    buffer = io.StringIO()

    def make(fmt: str) -> logging.Logger:
        handler = logging.StreamHandler(buffer)
        handler.setFormatter(
            logs.JsonFormatter() if fmt == "json" else logs._RedactingFormatter("%(levelname)s %(message)s")
        )
        logger = logging.getLogger(f"test.logs.{fmt}")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        return logger

    before = set(logs._secrets)
    for secret in SECRETS:
        logs.register_secret(secret)
    yield make, buffer
    logs._secrets.clear()
    logs._secrets.update(before)


def forms(secret: str) -> list[str]:
    """Every way the secret could appear in a line: raw, JSON-escaped, ASCII-escaped, repr."""
    return [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=True)[1:-1], repr(secret)[1:-1]]


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_is_masked_in_message_argument_extra_and_traceback(captured, fmt, secret):
    make, buffer = captured
    log = make(fmt)
    log.warning("connecting with %s", secret)
    log.info(f"inline {secret} in the message")
    log.info("an extra field", extra={"url": f"https://u:{secret}@host/db", "n": 3})
    try:
        raise ValueError(f"refused: {secret}")
    except ValueError:
        log.exception("with a traceback")
    out = buffer.getvalue()
    for form in forms(secret):
        assert form not in out, (fmt, form)
    assert out.count("**********") >= (4 if fmt == "json" else 3)  # text lines do not show extra fields
    if fmt == "json":
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[2]["n"] == 3 and "**********" in lines[2]["url"]
        assert "exc" in lines[3] and "ValueError" in lines[3]["exc"]
