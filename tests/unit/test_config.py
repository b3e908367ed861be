"""Settings: precedence (defaults < --config < env < flags), one-line errors, secrets never shown."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from collector.config import (
    DEFAULTS_FILE,
    Settings,
    load_settings,
    normalise_database_url,
)
from collector.errors import ConfigError


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(body)
    return path


def test_defaults_file_documents_the_code_defaults(clean_env):
    """config/collector.toml is the documentation of the defaults: it must not drift from code."""
    documented = tomllib.loads(DEFAULTS_FILE.read_text())
    code = Settings.model_construct()  # field defaults only, no sources
    for key, value in documented.items():
        actual = getattr(code, key)
        assert (str(actual) if isinstance(actual, Path) else actual) == value, key


@pytest.mark.parametrize("layer", ["file", "env", "flag"])
def test_each_layer_overrides_the_ones_below(clean_env, tmp_path, layer):
    cfg = write(tmp_path, 'exchange_url = "http://file:1"\nlog_level = "WARNING"\n')
    if layer in ("env", "flag"):
        clean_env.setenv("COLLECTOR_EXCHANGE_URL", "http://env:2")
    flags = {"exchange_url": "http://flag:3"} if layer == "flag" else {}
    s = load_settings(cfg, flags)
    assert s.exchange_url == {"file": "http://file:1", "env": "http://env:2", "flag": "http://flag:3"}[layer]
    assert s.log_level == "WARNING"  # from the file, untouched by higher layers


def test_defaults_without_anything(clean_env):
    s = load_settings()
    assert s.database_url is None
    assert s.kline_intervals == ["1m", "1h"]


def test_list_settings_from_environment_as_commas(clean_env):
    clean_env.setenv("COLLECTOR_KLINE_INTERVALS", "1m, 5m,1d")
    clean_env.setenv("COLLECTOR_STREAMS", "trades,klines")
    s = load_settings()
    assert s.kline_intervals == ["1m", "5m", "1d"]
    assert s.streams == ["trades", "klines"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_database_url_normalised_to_psycopg3(url, expected):
    assert normalise_database_url(url) == expected


def test_bad_env_value_names_setting_and_source(clean_env):
    clean_env.setenv("COLLECTOR_WEIGHT_MARGIN", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "weight_margin" in msg and "environment variable COLLECTOR_WEIGHT_MARGIN" in msg
    assert "\n" not in msg


def test_bad_file_value_names_the_file(clean_env, tmp_path):
    cfg = write(tmp_path, 'kline_intervals = ["1m", "7m"]\n')
    with pytest.raises(ConfigError, match=r"kline_intervals from config file .*c\.toml.*'7m'"):
        load_settings(cfg)


def test_bad_flag_names_the_flag(clean_env):
    with pytest.raises(ConfigError, match=r"exchange_url from flag --exchange-url"):
        load_settings(None, {"exchange_url": "ftp://nope"})


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("log_levl = 'INFO'\n", "unknown setting 'log_levl'"),
        ("this is not toml", "not valid TOML"),
        ("database_url = 'mysql://x/y'\n", "scheme 'mysql' is not supported"),
        ("depth_limit = 7\n", "depth_limit"),
        ("metrics_port = 70000\n", "metrics_port"),
    ],
)
def test_bad_config_files(clean_env, tmp_path, body, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_settings(write(tmp_path, body))


def test_missing_config_file(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_never_shown(clean_env):
    clean_env.setenv("COLLECTOR_API_KEY", "key-abcdef-123")
    clean_env.setenv("COLLECTOR_API_SECRET", "secret-xyz-789")
    clean_env.setenv("COLLECTOR_DATABASE_URL", "postgresql://me:pw-s3cret@db:5432/jex")
    s = load_settings()
    shown = repr(s) + str(s) + repr(s.public_dict())
    for secret in ("key-abcdef-123", "secret-xyz-789", "pw-s3cret"):
        assert secret not in shown
    assert s.api_secret.get_secret_value() == "secret-xyz-789"


def test_bad_database_url_does_not_echo_it(clean_env):
    clean_env.setenv("COLLECTOR_DATABASE_URL", "mysql://me:hunter2@db/x")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "hunter2" not in str(err.value)
