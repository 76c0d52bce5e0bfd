"""Keeping secrets out of output, params, artifacts and file names.

One rule decides what a secret name is: a name (a variable, param, tag, environment variable
or query-string key) is split into its parts (``db_password`` -> db, password; ``apiKey`` ->
api, key), and it names a secret when one part is a secret word or two neighbouring parts make
a secret phrase. So ``api_key``, ``AZURE_CLIENT_SECRET`` and ``sas_token`` are secrets, and
``key_size``, ``pass_rate``, ``sort_key``, ``n_tokens`` and ``tokenizer`` are not.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import tokenize
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "token",
    "apikey", "accesskey", "privatekey", "secretkey", "accountkey", "credential",
    "credentials", "connectionstring", "connstr", "sas", "sig",
})
SECRET_PHRASES = frozenset({
    ("api", "key"), ("access", "key"), ("private", "key"), ("account", "key"),
    ("storage", "key"), ("master", "key"), ("connection", "string"), ("conn", "str"),
})
REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter values (a flag, a digit) would mask ordinary text


def name_parts(name: str) -> list[str]:
    """The lower-case parts of a name: ``dbPassword`` and ``DB_PASSWORD`` -> db, password."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [part for part in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if part]


def is_secret_name(name: str) -> bool:
    """Tell whether a variable, param, tag or environment variable name says it holds a
    secret (see the module's rule)."""
    parts = name_parts(name)
    return any(part in SECRET_WORDS for part in parts) or any(
        pair in SECRET_PHRASES for pair in zip(parts, parts[1:], strict=False)
    )


_SECRET_HINT = re.compile("|".join(sorted(
    SECRET_WORDS | {second for _, second in SECRET_PHRASES}, key=len, reverse=True)), re.I)


def may_name_secret(text: str) -> bool:
    """A quick test before the tokenizer: False when no name in ``text`` can name a secret
    (none holds a secret word, nor the last word of a secret phrase)."""
    return _SECRET_HINT.search(text) is not None


def mask_url_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by
    ***."""
    return _redact_unparsable(text) if "@" in text else text


def redact_uri(uri: str) -> str:
    """Return ``uri`` with any password and any secret-looking query value replaced by ***."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _redact_unparsable(uri)
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


def _redact_unparsable(uri: str) -> str:
    return re.sub(r"(//[^/@\s]*?):[^/@\s]*@", rf"\1:{REDACTED}@", uri)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """An HTTP(S) URI without its user-info, and the user name and password it held."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return uri, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, parts.username or None, parts.password or None


def without_credentials(url: str) -> str:
    """``url`` without its user-info and query, fit to show as a link."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def secret_values(uri: str = "", environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets text must not show: the password and secret query values of ``uri``, and
    the values of the secret-named environment variables; longest first."""
    environ = os.environ if environ is None else environ
    values = [value for name, value in environ.items() if is_secret_name(name)]
    if uri:
        try:
            parts = urlsplit(uri)
        except ValueError:
            parts = None
        if parts is not None:
            values += [parts.password or ""]
            values += [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
    kept = {value for value in values if value and len(value) >= MIN_SECRET_LENGTH}
    return sorted(kept, key=len, reverse=True)


def scrub(text: str, uri: str = "", extra: Iterable[str] = ()) -> str:
    """``text`` with every secret of :func:`secret_values` (and ``extra``) replaced by ***."""
    for value in (*secret_values(uri), *extra):
        if value:
            text = text.replace(value, REDACTED)
    return text


def error_line(error: BaseException, uri: str = "") -> str:
    """The first line of an error's message, with every known secret scrubbed out."""
    text = getattr(error, "message", None) or str(error)
    return first_line(str(text), uri) or type(error).__name__


def first_line(text: str, uri: str = "") -> str:
    """The first line of ``text`` (blank lines around it dropped), secrets scrubbed out."""
    lines = text.strip().splitlines()
    return scrub(lines[0], uri) if lines else ""


def mask_value(key: str, value: object) -> object:
    """``value``, or *** when ``key`` names a secret."""
    return REDACTED if is_secret_name(key) else value


# --- source code: string literals given to secret-named variables ---------------------------

_ASSIGNING = {"=", ":", "==", "+=", "(", ","}  # what may stand between a name and its literal
_QUOTED_NAME = re.compile(r"""^[rbuRBUfF]*(['"])(.*)\1$""", re.S)


def mask_secret_literals(source: str) -> str:
    """``source`` with each string literal that is assigned to a secret-named variable,
    attribute, dict key, subscript or keyword argument replaced by '***'."""
    spans = _literal_offsets(source)
    if spans is None:
        return _mask_by_pattern(source)
    pieces, position = [], 0
    for start, end in spans:
        pieces += [source[position:start], f"'{REDACTED}'"]
        position = end
    return "".join(pieces + [source[position:]])


def masked_source(source: str) -> tuple[str, list[str]]:
    """``source`` masked as :func:`mask_secret_literals` does, and the values it masked
    (as :func:`secret_literals` finds them), from one pass of the tokenizer."""
    spans = _literal_offsets(source)
    if spans is None:
        values: list[str] = []
        return _mask_by_pattern(source, values), values
    pieces, position, values = [], 0, []
    for start, end in spans:
        pieces += [source[position:start], f"'{REDACTED}'"]
        values += _literal_value(source[start:end])
        position = end
    return "".join(pieces + [source[position:]]), values


def _literal_value(literal: str) -> list[str]:
    with contextlib.suppress(ValueError, SyntaxError):
        value = ast.literal_eval(literal)
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            return [value]
    return []


def secret_literals(source: str) -> list[str]:
    """The values of the string literals :func:`mask_secret_literals` masks (to scrub them
    from text that quotes the source, such as a traceback)."""
    values = []
    for start, end in _literal_offsets(source) or ():
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(source[start:end])
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
                values.append(value)
    return values


def _literal_offsets(source: str) -> list[tuple[int, int]] | None:
    """Where the secret literals of ``source`` are, as character offsets; None if it does not
    tokenize as Python."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    return [(starts[start[0] - 1] + start[1], starts[end[0] - 1] + end[1])
            for start, end in _secret_literal_spans(significant)]


def _secret_literal_spans(tokens: list) -> list[tuple]:
    spans, index = [], 0
    while index < len(tokens):
        end = _literal_end(tokens, index)
        if end is not None and _names_secret(tokens, index):
            spans.append((tokens[index].start, tokens[end].end))
            index = end + 1
        else:
            index = end + 1 if end is not None else index + 1
    return spans


def _literal_end(tokens: list, index: int) -> int | None:
    """The index of the last token of the string literal (implicit concatenation and
    f-strings included) that starts at ``index``; None if none starts there."""
    kinds = {tokenize.STRING, getattr(tokenize, "FSTRING_START", -1)}
    if tokens[index].type not in kinds:
        return None
    end, depth = index, 0
    while end < len(tokens):
        kind = tokens[end].type
        if kind == getattr(tokenize, "FSTRING_START", -1):
            depth += 1
        elif kind == getattr(tokenize, "FSTRING_END", -1):
            depth -= 1
        elif depth == 0 and kind != tokenize.STRING:
            break
        end += 1
    return end - 1


def _names_secret(tokens: list, index: int) -> bool:
    """Whether the literal at ``index`` is given to a secret-named target."""
    before = tokens[max(0, index - 5):index]
    if not before or before[-1].string not in _ASSIGNING:
        return False
    for token in reversed(before[:-1]):
        if token.string in ("str", "bytes"):  # an annotation: password: str = "..."
            continue
        if token.type == tokenize.NAME:
            return is_secret_name(token.string)
        if token.type == tokenize.STRING:
            match = _QUOTED_NAME.match(token.string)
            return bool(match) and is_secret_name(match.group(2))
        if token.string not in ("]", ":", "[", ".", "(", "="):
            return False
    return False


_ASSIGNMENT = re.compile(r"""(?P<name>[A-Za-z_][\w]*)(?P<sep>['"]?\s*[:=]\s*)"""
                         r"""(?P<literal>(['"]).*?(?<!\\)\4)""")


def _mask_by_pattern(source: str, values: list[str] | None = None) -> str:
    """The fallback for text that does not tokenize as Python (an open quote, a shell
    escape): ``name = '...'`` and ``"name": "..."`` on one line. The values masked are added
    to ``values``."""
    def mask(match: re.Match) -> str:
        if not is_secret_name(match.group("name")):
            return match.group(0)
        if values is not None:
            values.extend(_literal_value(match.group("literal")))
        return f"{match.group('name')}{match.group('sep')}'{REDACTED}'"

    return _ASSIGNMENT.sub(mask, source)
