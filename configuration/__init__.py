"""Configuration: the schema, loading `config.toml`, and explaining its errors."""

from configuration.database_url import DatabaseUrl, DatabaseUrlError, parse_database_url
from configuration.loading import (
    ConfigError,
    LoadedConfig,
    config_warnings,
    describe_errors,
    load_config,
    read_config,
    render_config,
    validate_config,
)
from configuration.logs import InterceptHandler, register_secret, scrub, setup_logging
from configuration.masking import looks_like_variable_name, mask_url, url_secrets
from configuration.model import (
    AppConfig,
    BacktestConfig,
    ControlConfig,
    DatabaseConfig,
    ExchangeConfig,
    LoggingConfig,
    PaperConfig,
    RiskConfig,
    StrategyConfig,
    SupervisionConfig,
    TradingConfig,
)

__all__ = [
    "AppConfig",
    "ConfigError",
    "ControlConfig",
    "DatabaseConfig",
    "DatabaseUrl",
    "DatabaseUrlError",
    "ExchangeConfig",
    "InterceptHandler",
    "LoadedConfig",
    "LoggingConfig",
    "PaperConfig",
    "BacktestConfig",
    "RiskConfig",
    "StrategyConfig",
    "SupervisionConfig",
    "TradingConfig",
    "config_warnings",
    "describe_errors",
    "load_config",
    "read_config",
    "looks_like_variable_name",
    "mask_url",
    "parse_database_url",
    "register_secret",
    "render_config",
    "scrub",
    "setup_logging",
    "url_secrets",
    "validate_config",
]
