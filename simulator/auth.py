"""Kraken Futures request authentication: the `APIKey` / `Authent` (and optional `Nonce`) headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Iterable, Mapping

AUTH_ERROR = "authenticationError"


def generate_credentials() -> tuple[str, str]:
    """A fresh random API key and base64 secret, shaped like Kraken's."""
    key = base64.b64encode(secrets.token_bytes(42)).decode()
    secret = base64.b64encode(secrets.token_bytes(64)).decode()
    return key, secret


def decode_secret(secret: str) -> bytes:
    """The raw HMAC key of a base64 API secret; ValueError if it is not base64."""
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("api secret must be base64") from exc


def sign(secret: str, endpoint_path: str, post_data: str, nonce: str = "") -> str:
    """Kraken's Authent: base64(HMAC-SHA512(b64decode(secret), SHA256(postData + nonce + endpointPath)))."""
    digest = hashlib.sha256((post_data + nonce + endpoint_path).encode()).digest()
    mac = hmac.new(decode_secret(secret), digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def endpoint_path(url_path: str) -> str:
    """The path Kraken signs: the URL path without the `/derivatives` prefix (e.g. `/api/v3/sendorder`)."""
    return url_path[len("/derivatives"):] if url_path.startswith("/derivatives/") else url_path


class Authenticator:
    """Checks the signature of private requests against one key pair."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        decode_secret(api_secret)
        self.api_key = api_key
        self._secret = api_secret
        self._nonces: deque[str] = deque(maxlen=10_000)
        self._nonce_set: set[str] = set()

    def check(self, headers: Mapping[str, str], url_path: str, post_data_candidates: Iterable[str]) -> str | None:
        """None if the request is authentic, else Kraken's error string."""
        lower = {k.lower(): v for k, v in headers.items()}
        key = lower.get("apikey")
        authent = lower.get("authent")
        if not key or not authent:
            return AUTH_ERROR
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return AUTH_ERROR
        nonce = lower.get("nonce") or ""
        path = endpoint_path(url_path)
        for post_data in dict.fromkeys(post_data_candidates):
            expected = sign(self._secret, path, post_data, nonce)
            if hmac.compare_digest(expected.encode(), authent.strip().encode()):
                return self._check_nonce(nonce)
        return AUTH_ERROR

    def _check_nonce(self, nonce: str) -> str | None:
        """Reject a nonce that was already used (Kraken: `nonceDuplicate`)."""
        if not nonce:
            return None
        if nonce in self._nonce_set:
            return "nonceDuplicate"
        if len(self._nonces) == self._nonces.maxlen:
            self._nonce_set.discard(self._nonces[0])
        self._nonces.append(nonce)
        self._nonce_set.add(nonce)
        return None
