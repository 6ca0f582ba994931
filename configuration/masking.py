"""The one place secrets are recognised: passwords in URLs, and values that look like secrets, not names."""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# scheme://userinfo@ - the userinfo runs to the LAST "@" of the word, so a password holding "@", "/" or ":" is
# masked whole; masking too much is safe, masking too little is not.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s'\"<>`]*)@")
_QUERY_SECRET = re.compile(r"(?i)\b(?P<key>password|passwd|pwd|sslpassword|secret|token)=(?P<value>[^&\s'\"<>`]+)")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _split_userinfo(info: str) -> tuple[str, str | None]:
    """A URL's userinfo as (user, password), password None without ":" (what mask_url hides, url_secrets finds)."""
    user, colon, password = info.partition(":")
    return user, password if colon else None


def mask_url(text: str) -> str:
    """Hide every password in `text`: `postgresql://bot:pw@host/db` -> `postgresql://bot:***@host/db`.

    Works on a bare URL and on any message that contains URLs (errors, log lines, status); the user name
    stays, the password (and `password=` style query values) become ***.
    """
    if "://" not in text and "=" not in text:
        return text

    def userinfo(match: re.Match[str]) -> str:
        user, password = _split_userinfo(match.group("userinfo"))
        if password is None:
            return match.group(0)  # a user name alone is no secret
        return f"{match.group('scheme')}{user}:{MASK}@"

    masked = _URL_USERINFO.sub(userinfo, text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('key')}={MASK}", masked)


def url_secrets(url: str) -> list[str]:
    """The passwords in a URL (as written and decoded): what the log scrubber must never let through."""
    found: list[str] = []
    match = _URL_USERINFO.search(url)
    password = None if match is None else _split_userinfo(match.group("userinfo"))[1]
    if password is not None:
        found.append(password)
    found.extend(m.group("value") for m in _QUERY_SECRET.finditer(url))
    return [v for raw in found if raw for v in dict.fromkeys((raw, unquote(raw)))]


def looks_like_variable_name(value: str) -> bool:
    """True for a plausible environment variable name (KRAKEN_FUTURES_API_KEY), False for anything else."""
    return bool(VARIABLE_NAME.match(value)) and not looks_like_secret(value)


def looks_like_secret(value: str) -> bool:
    """True when a would-be variable name reads like a generated key or token rather than a name."""
    if "_" in value or len(value) < 16:
        return False
    has_digit = any(ch.isdigit() for ch in value)
    has_lower = any(ch.islower() for ch in value)
    has_upper = any(ch.isupper() for ch in value)
    return (has_lower and has_upper) or (has_digit and (has_lower or has_upper) and len(value) >= 20)


__all__ = ["MASK", "VARIABLE_NAME", "looks_like_secret", "looks_like_variable_name", "mask_url", "url_secrets"]
