"""Settings: one pydantic-settings model, built by the CLI (never at import time).

Precedence, lowest to highest: field defaults < ``config/collector.toml`` (documented defaults)
< ``--config FILE`` < environment ``COLLECTOR_*`` < command flags. A bad value becomes one
``ConfigError`` line naming the setting and where it came from. Secrets are ``SecretStr`` and the
database URL is shown with its password hidden.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from collector.domain import DEFAULT_PRIORITIES, INTERVALS, PUSHABLE, STREAMS
from collector.errors import ConfigError

ENV_PREFIX = "COLLECTOR_"


def default_data_dir() -> Path:
    """One per-user data directory (platformdirs: $XDG_DATA_HOME/jex-collector, by default
    ~/.local/share/jex-collector on Linux), the same whatever the current directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("jex-collector", appauthor=False))


DEFAULTS_FILE = Path(str(files("collector.defaults") / "collector.toml"))  # config/collector.toml, shipped
SECRET_FIELDS = ("api_key", "api_secret")

# The merged TOML layers for the Settings being built right now (see load_settings).
_file_layer: ContextVar[Mapping[str, Any]] = ContextVar("_file_layer", default=MappingProxyType({}))


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the collector can be told. See config/collector.toml for the documentation."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # Where things are
    database_url: str | None = None
    exchange_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    data_dir: Path = Field(default_factory=lambda: default_data_dir())

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # The exchange client
    weight_margin: float = Field(0.05, ge=0.0, le=0.5)
    weight_burst: float = Field(0.5, gt=0.0, le=1.0)
    http_connect_timeout: float = Field(5.0, gt=0)
    http_read_timeout: float = Field(15.0, gt=0)
    http_max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_retries: int = Field(5, ge=0, le=50)
    max_ban_wait_seconds: float = Field(600.0, ge=0)

    # What the daemon collects and how often
    streams: Annotated[list[str], NoDecode] = ["klines", "trades", "depth", "tickers", "account"]
    kline_intervals: Annotated[list[str], NoDecode] = ["1m", "1h"]
    symbols_refresh_seconds: float = Field(300.0, gt=0)
    # adaptive: weight allocated where staleness costs most (busy symbols' trades polled often, quiet
    # ones rarely, a price signal for what traded); fixed: every symbol every trades_poll_seconds,
    # the least urgent jobs stretched first when the budget does not fit (the schedule before).
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    trades_poll_seconds: float = Field(15.0, gt=0)  # fixed: every symbol's trades this often
    trades_min_seconds: float = Field(1.0, gt=0)  # adaptive: no symbol's trades more often than this
    trades_sweep_seconds: float = Field(300.0, gt=0)  # adaptive: every symbol's trades at least this often
    trades_signal_seconds: float = Field(1.5, ge=0)  # adaptive: last prices of all symbols (weight 2); 0: off
    # adaptive, with the price signal: the 24hr tickers of symbols trading at an unchanged price (weight 1
    # each, 40 for all) at most this often, their volumes showing those trades
    trades_volume_seconds: float = Field(1.5, gt=0)
    max_stretch: float = Field(4.0, ge=1)  # adaptive: no job stretched beyond this times its interval
    # adaptive: what a second of staleness costs, per stream (trades: per trade per second)
    stream_priorities: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    klines_poll_seconds: float = Field(60.0, gt=0)
    depth_poll_seconds: float = Field(60.0, gt=0)
    tickers_poll_seconds: float = Field(60.0, gt=0)
    avg_price_poll_seconds: float = Field(60.0, gt=0)
    book_ticker_poll_seconds: float = Field(60.0, gt=0)
    account_poll_seconds: float = Field(60.0, gt=0)  # balances, positions, orders not yet final
    account_history_seconds: float = Field(300.0, gt=0)  # new orders and shorts/calls, symbol by symbol
    account_name: str = "default"  # stored beside every account row (a label, never the key)
    depth_limit: Literal[5, 10, 20, 50, 60] = 20
    lookback_hours: float = Field(1.0, ge=0)

    # Push: the exchange's web-socket streams, merged with REST (collector/daemon/push.py)
    stream_url: str | None = None  # ws:// or wss:// base; None: the exchange URL's host (ws/wss)
    push: Annotated[list[str], NoDecode] = list(PUSHABLE)  # streams followed by push as well; [] off
    push_confirm_seconds: float = Field(60.0, gt=0)  # REST confirms pushed trades at least this often
    stream_stall_seconds: float = Field(10.0, gt=0)  # a connection silent this long is reopened
    stream_renew_seconds: float = Field(23 * 3600.0, gt=0)  # reopened before the exchange's 24 h limit
    user_stream_keepalive_seconds: float = Field(1800.0, gt=0)  # the listenKey lapses after 60 minutes without

    # Several collectors on one database (collector/coordination.py)
    coordination: bool = True  # leases on symbols through the database
    lease_ttl_seconds: float = Field(15.0, ge=3)
    shared_budget: bool = True  # one weight budget per egress IP, shared through the database
    egress: str = "default"  # name of the egress IP whose budget this process spends

    # Backfill
    backfill_batch_rows: int = Field(5000, ge=100)

    # Observability
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)
    health_max_lag_seconds: float = Field(300.0, gt=0)

    _split = field_validator("streams", "kline_intervals", "push", mode="before")(_split_list)

    @field_validator("push")
    @classmethod
    def _pushable(cls, value: list[str]) -> list[str]:
        if value == ["none"]:
            return []
        unknown = [s for s in value if s not in PUSHABLE]
        if unknown:
            raise ValueError(f"no push stream for {unknown[0]!r}; choose from {', '.join(PUSHABLE)} (or none)")
        return value

    @field_validator("stream_url")
    @classmethod
    def _check_stream_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _checked_url(value, ("ws", "wss"))

    @field_validator("stream_priorities")
    @classmethod
    def _known_priorities(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [s for s in value if s not in DEFAULT_PRIORITIES]
        if unknown:
            raise ValueError(f"no priority for stream {unknown[0]!r}; choose from {', '.join(DEFAULT_PRIORITIES)}")
        negative = [s for s, v in value.items() if v < 0]
        if negative:
            raise ValueError(f"the priority of {negative[0]!r} must be >= 0")
        return {**DEFAULT_PRIORITIES, **value}  # the streams not named keep their defaults

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in STREAMS]
        if unknown:
            raise ValueError(f"unknown stream {unknown[0]!r}; choose from {', '.join(STREAMS)}")
        return value

    @field_validator("kline_intervals")
    @classmethod
    def _known_intervals(cls, value: list[str]) -> list[str]:
        unknown = [i for i in value if i not in INTERVALS]
        if unknown:
            raise ValueError(f"unknown interval {unknown[0]!r}; choose from {', '.join(INTERVALS)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return normalise_database_url(value)

    @field_validator("exchange_url")
    @classmethod
    def _check_exchange_url(cls, value: str) -> str:
        return _checked_url(value, ("http", "https"))

    def push_url(self) -> str:
        """The web-socket base: ``stream_url``, or the exchange URL's host with ws:// (wss://)."""
        if self.stream_url:
            return self.stream_url
        scheme, rest = self.exchange_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, InitSettingsSource(settings_cls, dict(_file_layer.get())))

    def __repr_args__(self):  # repr() and str() must not show the database password either
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "database_url" and value else value)

    def public_dict(self) -> dict[str, Any]:
        """The settings as they may be shown: secrets masked, the database password hidden."""
        out = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            out[name] = "**********" if getattr(self, name) is not None else None
        if self.database_url:
            out["database_url"] = redact_url(self.database_url)
        return out


def _checked_url(value: str, schemes: tuple[str, ...]) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/")


def normalise_database_url(url: str) -> str:
    """Point ``postgres://`` and ``postgresql://`` URLs at the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("is not a URL (expected postgresql://user:password@host:port/database)")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    raise ValueError(f"scheme {scheme!r} is not supported (use postgresql://)")


def redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as nothing at all
        return "<unparseable URL>"


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{label} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{label} {path} is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label} {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{label} {path} cannot be read: {exc.strerror}") from None


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    defaults_file: Path | None = DEFAULTS_FILE,
) -> Settings:
    """Build Settings from every layer; raise ConfigError with one line on a bad value."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if defaults_file is not None and defaults_file.exists():
        layers.append((f"defaults file {defaults_file}", _read_toml(defaults_file, "defaults file")))
    if config_file is not None:
        layers.append((f"config file {config_file}", _read_toml(Path(config_file), "config file")))
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for label, data in layers:
        for key, value in data.items():
            merged[key] = value
            origin[key] = label
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    token = _file_layer.set(merged)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, flags, origin)) from None
    finally:
        _file_layer.reset(token)


def _describe(exc: ValidationError, flags: dict[str, Any], origin: dict[str, str]) -> str:
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    field = loc[0] if loc else "?"
    env_name = f"{ENV_PREFIX}{field.upper()}"
    if err["type"] == "extra_forbidden":
        return f"unknown setting {field!r} in {origin.get(field, 'the settings')}"
    if field in flags:
        source = f"flag --{field.replace('_', '-')}"
    elif env_name in os.environ:
        source = f"environment variable {env_name}"
    else:
        source = origin.get(field, "default")
    message = err["msg"].removeprefix("Value error, ")
    shown = "" if field in SECRET_FIELDS or field == "database_url" else f" (got {err.get('input')!r})"
    return f"invalid setting {field} from {source}: {message}{shown}"
