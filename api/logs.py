"""Structured JSON logs: one object per line on stderr.

Records never carry raw customer ids or API keys: routes log the customer's
pseudonym (shortened) and the key's public id only; the access log records the
route template (``/customers/{customer_id}``), never the path or query string.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "clearshelf.api"
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the service's logs (and uvicorn's error log) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER_NAME, "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # uvicorn's access log writes raw paths and query strings (customer ids): off.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def short_key(customer_key: str) -> str:
    """The part of a pseudonym that goes into logs (enough to correlate, not the whole key)."""
    return customer_key[:16]
