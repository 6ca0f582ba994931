"""Build a `ccxt.krakenfutures` client for a mode or for any Kraken-Futures-compatible base URL."""

from __future__ import annotations

from typing import Any

import ccxt

KRAKEN_BASE_URLS: dict[str, str] = {
    "live": "https://futures.kraken.com",
    "demo": "https://demo-futures.kraken.com",
}


def kraken_urls(base_url: str) -> dict[str, str]:
    """Return ccxt's `urls['api']` for a Kraken Futures base URL such as `http://127.0.0.1:8081`."""
    base = base_url.rstrip("/")
    return {
        "public": f"{base}/derivatives/api/",
        "private": f"{base}/derivatives/api/",
        "charts": f"{base}/api/charts/",
        "history": f"{base}/api/history/",
        "feeschedules": f"{base}/api/feeschedules/",
    }


def make_kraken_client(
    base_url: str,
    api_key: str | None = None,
    api_secret: str | None = None,
    *,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = False,
    **options: Any,
) -> ccxt.krakenfutures:
    """Return a real `ccxt.krakenfutures` client whose only change is its base URL (and keys)."""
    config: dict[str, Any] = {"timeout": timeout_ms, "enableRateLimit": enable_rate_limit}
    if api_key is not None:
        config["apiKey"] = api_key
    if api_secret is not None:
        config["secret"] = api_secret
    config.update(options)
    client = ccxt.krakenfutures(config)
    client.urls["api"] = kraken_urls(base_url)
    return client
