"""Build a `ccxt.krakenfutures` client for a mode or for any Kraken-Futures-compatible base URL."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import ccxt

KRAKEN_BASE_URLS: dict[str, str] = {
    "live": "https://futures.kraken.com",
    "demo": "https://demo-futures.kraken.com",
}

# batchorder's request-level processBefore is a form field of the request, beside `json=` (batch-order docs:
# https://docs.kraken.com/api/docs/futures-api/trading/send-batch-order). ccxt cannot send it: its sign() puts
# every parameter of a batchorder inside the json body, where Kraken does not document it.
BATCH_PROCESS_BEFORE = "ProcessBefore"
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


class KrakenFutures(ccxt.krakenfutures):
    """ccxt's krakenfutures client, plus batchorder's `ProcessBefore` form field; nothing else changes.

    A batchorder whose params carry `ProcessBefore` is signed by ccxt without it (body `json=<params>`), then
    the field is appended to the body (`json=...&ProcessBefore=<ISO time>`) and the body signed again the way
    ccxt signs every private request: Authent = base64(HMAC-SHA512(secret, SHA256(postData + "/api/" +
    endpoint))). The ISO time has no character that needs URL encoding (it is checked), so the signed text is
    the text sent, decoded or not. ccxt still builds the URL and headers, sends, and maps Kraken's errors.
    """

    def sign(self, path: str, api: Any = ["public"], method: str = "GET", params: Any = {}) -> dict[str, Any]:  # noqa: B006 - ccxt's signature
        if path != "batchorder" or not isinstance(params, dict) or BATCH_PROCESS_BEFORE not in params:
            return super().sign(path, api, method, params)
        before = params[BATCH_PROCESS_BEFORE]
        if not isinstance(before, str) or not _ISO_TIME.fullmatch(before):
            raise ccxt.ArgumentsRequired(f"{self.id} batchorder ProcessBefore must be an ISO-8601 UTC time such as "
                                         f"2024-01-01T00:00:00.000Z, got {before!r}")
        request = super().sign(path, api, method, self.omit(params, BATCH_PROCESS_BEFORE))
        api_name = api[0]
        api_url = self.urls["api"][api_name]
        endpoint = request["url"][len(api_url):]  # e.g. v3/batchorder (ccxt's `endpoint`, no query for batchorder)
        body = f"{request['body']}&{BATCH_PROCESS_BEFORE}={before}"
        auth = body + "/api/" + ("" if api_name == "private" else api_name + "/") + endpoint
        digest = self.hash(self.encode(auth), "sha256", "binary")
        request["headers"]["Authent"] = self.hmac(digest, self.base64_to_binary(self.secret), hashlib.sha512,
                                                  "base64")
        request["body"] = body
        return request


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
    """Return a real `ccxt.krakenfutures` client (with batchorder's ProcessBefore, see KrakenFutures) whose only
    other changes are its base URL (and keys)."""
    config: dict[str, Any] = {"timeout": timeout_ms, "enableRateLimit": enable_rate_limit}
    if api_key is not None:
        config["apiKey"] = api_key
    if api_secret is not None:
        config["secret"] = api_secret
    config.update(options)
    client = KrakenFutures(config)
    client.urls["api"] = kraken_urls(base_url)
    return client
