"""JSON logging through structlog; per-reconcile context travels in contextvars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog
from structlog.typing import FilteringBoundLogger


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(*, level: str = "info", controller: str | None = None, json: bool = True) -> None:
    """Configure structlog (and the stdlib root logger, for libraries) once per process."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer(serializer=_dumps) if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library loggers (aiokafka, aiohttp) go through the same JSON renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(lvl, logging.WARNING) if lvl < logging.WARNING else lvl)
    if controller:
        structlog.contextvars.bind_contextvars(controller=controller)


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger; ``name`` becomes the ``module`` field."""
    # Initial values stay lazy, so module-level loggers made before configure_logging() still use it.
    # structlog types the lazy proxy as Any; what it binds to is configure_logging()'s wrapper class
    # (make_filtering_bound_logger, as structlog's default is), a FilteringBoundLogger.
    logger: FilteringBoundLogger = structlog.get_logger(module=name) if name else structlog.get_logger()
    return logger


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind fields (kind, namespace, name, revision, reconcile_id) for the duration of a block."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
