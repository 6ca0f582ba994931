"""Persistence: peewee models, opening the database from a URL, and the store's queries."""

from configuration.database_url import DatabaseUrl, parse_database_url  # read once, where the configuration is
from persistence.database import DatabaseUrlError, describe_database, open_database
from persistence.instance_lock import AlreadyRunningError, InstanceLock
from persistence.models import SCHEMA_VERSION, Models, build_models
from persistence.store import SchemaVersionError, StorageError, Store

__all__ = [
    "AlreadyRunningError",
    "InstanceLock",
    "SCHEMA_VERSION",
    "DatabaseUrl",
    "DatabaseUrlError",
    "Models",
    "SchemaVersionError",
    "StorageError",
    "Store",
    "build_models",
    "describe_database",
    "open_database",
    "parse_database_url",
]
