"""Structured logging that always names the delivery being worked on and never leaks a secret.

Production logs are one JSON object a line so a log pipeline can index them; a terminal gets a
readable line instead. The delivery id travels in a context variable, so every log call made while
a delivery is handled carries it without threading it through each function.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable

delivery_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "delivery_id", default=None
)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


#: Secrets minted while running (installation tokens), masked like the configured ones.
_minted: set[str] = set()


def add_secret(value: str) -> None:
    """Masks a secret learnt at run time in every log line from now on."""
    if value and len(value) >= 8:
        _minted.add(value)


def known_secrets() -> frozenset[str]:
    """Every secret registered so far, for other outputs that mask them (the pages)."""
    return frozenset(_minted)


class _SecretRedactor(logging.Filter):
    """Replaces every secret value in a record's text before any handler sees it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real secrets are long.
        self.configured = {s for s in secrets if s and len(s) >= 8}
        self._known = 0
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self._known != len(_minted) or not self.secrets:
            self.secrets = sorted(self.configured | _minted, key=len, reverse=True)
            self._known = len(_minted)
        if not self.secrets:
            return True
        text = record.getMessage()
        redacted = redact(text, self.secrets)
        if redacted != text:
            record.msg, record.args = redacted, None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
            record.exc_info = None
        return True


def redact(text: str, secrets: Iterable[str]) -> str:
    """Masks secret values wherever they appear, including inside URLs and tracebacks."""
    for secret in sorted(set(secrets), key=len, reverse=True):  # longest first: no leftovers
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


class _DeliveryFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "delivery"):
            record.delivery = delivery_id_var.get()
        return True


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _RESERVED and k != "delivery" and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.delivery:  # type: ignore[attr-defined]
            entry["delivery"] = record.delivery  # type: ignore[attr-defined]
        entry.update(_extras(record))
        if record.exc_text or record.exc_info:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        delivery = record.delivery  # type: ignore[attr-defined]
        where = f" [{delivery[:8]}]" if delivery else ""
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}{where}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_text or record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))  # type: ignore[arg-type]
        return line


def configure(*, level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Installs the bot's handler on the root logger; safe to call again (it replaces itself)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_bot_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._bot_handler = True  # type: ignore[attr-defined]
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_DeliveryFilter())
    handler.addFilter(_SecretRedactor(secrets))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log would add a line per webhook; the bot logs what matters itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
