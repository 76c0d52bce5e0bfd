"""Keeping secrets out of output, params and artifacts."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_WORDS = {
    "password", "passwd", "pwd", "pass", "token", "secret", "key", "apikey", "credential",
    "credentials", "cred", "creds", "auth", "sas", "signature", "sig", "connstr",
    "connectionstring", "privatekey", "bearer", "cookie", "session",
}
_SECRET_PHRASES = (
    "connection_string", "connectionstring", "access_key", "api_key", "client_secret",
)
REDACTED = "***"


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word]


def is_secret_name(name: str) -> bool:
    """Tell whether a variable, param or query-string name says that it holds a secret."""
    lowered = name.lower()
    if any(phrase in lowered for phrase in _SECRET_PHRASES):
        return True
    return any(word in _SECRET_WORDS for word in _words(name))


def redact_uri(uri: str) -> str:
    """Return ``uri`` with any password and any secret-looking query value replaced by ***."""
    parts = urlsplit(uri)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if is_secret_name(k) else v) for k, v in pairs], safe="*/:"
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def without_credentials(url: str) -> str:
    """``url`` without its user-info and query, fit to show as a link."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text: str, uri: str) -> str:
    """Remove from ``text`` the password and secret query values that ``uri`` carries."""
    parts = urlsplit(uri)
    hidden = [parts.password] if parts.password else []
    hidden += [v for k, v in parse_qsl(parts.query) if v and is_secret_name(k)]
    for value in hidden:
        text = text.replace(value, REDACTED)
    return text


def error_line(error: BaseException, uri: str) -> str:
    """The first line of an error's message, with the secrets of ``uri`` scrubbed out."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return scrub(text.strip().splitlines()[0], uri)
