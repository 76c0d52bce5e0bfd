"""What a tracked cell keeps so that its run can be made again: the notebook as saved
(``notebook.ipynb``), the cells this kernel ran before it (``history.py``), the git state of
the notebook's repository (MLflow's ``mlflow.source.git.*`` tags and ``git.diff``), and the
installed packages (``requirements.txt``).

The cell's own thread only copies what it needs (the history list, the notebook's path);
reading files, asking git, listing the packages (once a session) and masking secrets happen
in a background thread. A part that cannot be taken is one line, and the run goes on.
Secrets follow :mod:`mlmagic.base.secrets`: string literals given to secret-named names are
masked, and every such literal, the URI's password and secret environment values are
scrubbed from all of it.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlmagic.base.display import notify
from mlmagic.base.errors import InvalidInput
from mlmagic.base.secrets import (
    MIN_SECRET_LENGTH,
    REDACTED,
    error_line,
    is_secret_name,
    mask_url_credentials,
    masked_source,
    may_name_secret,
    secret_values,
    without_credentials,
)

PARTS = ("notebook", "history", "git", "environment")
NOTEBOOK_ARTIFACT = "notebook.ipynb"
HISTORY_ARTIFACT = "history.py"
DIFF_ARTIFACT = "git.diff"
ENVIRONMENT_ARTIFACT = "requirements.txt"
ARTIFACTS = (NOTEBOOK_ARTIFACT, HISTORY_ARTIFACT, DIFF_ARTIFACT, ENVIRONMENT_ARTIFACT)
COMMIT_TAG = "mlflow.source.git.commit"
BRANCH_TAG = "mlflow.source.git.branch"
REPO_URL_TAG = "mlflow.source.git.repoURL"
OPTIONS_TAG = "mlmagic.track.options"  # what %%track was given, for %aml_reproduce
CELL_MARK = "# In[{}]:"
CELL_MARK_PATTERN = re.compile(r"^# In\[(\d*)\]:$", re.M)
MAX_NOTEBOOK_BYTES = 20_000_000
MAX_HISTORY_CHARS = 2_000_000
MAX_DIFF_CHARS = 2_000_000
GIT_TIMEOUT = 5.0  # seconds for one git command
# Magics that change something outside the kernel: a replay keeps them as comments.
NOT_REPLAYED = ("aml_deploy", "aml_undeploy", "aml_register", "aml_submit", "aml_sync",
                "aml_predict", "aml_init_script", "aml_reproduce", "aml_panel")
_NOT_REPLAYED = re.compile(
    r"^(\s*)((?:\w+\s*=\s*)?%(?:" + "|".join(NOT_REPLAYED) + r")\b.*)$", re.M)
_UNQUOTED_PAIR = re.compile(r"""(?P<name>[A-Za-z_][\w.-]*)(?P<sep>\s*[:=]\s*)"""
                            r"""(?P<value>[^\s'"*#][^\s'"]*)""")
_MAGIC_PAIR = re.compile(r"""([\w.-]+)=("[^"]*"|'[^']*'|\S+)""")
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def checked_parts(parts: Iterable[str]) -> frozenset[str]:
    """The parts to keep, each one of :data:`PARTS`."""
    parts = frozenset(parts)
    unknown = sorted(parts - set(PARTS))
    if unknown:
        raise InvalidInput(f"provenance takes {', '.join(PARTS)}; not {', '.join(unknown)}.")
    return parts


def options_tag(params: Iterable[str], capture: Iterable[str], autolog: bool) -> dict:
    """The tag saying how the cell was tracked (the names of its params, what it captured),
    so that a reproduction tracks it the same way."""
    options = {"params": sorted(params), "capture": list(capture), "autolog": autolog}
    text = json.dumps(options)
    return {OPTIONS_TAG: text} if len(text) <= 5000 else {}


@dataclass
class Capture:
    """What the cell's thread takes at the start of a tracked cell; the rest is read from
    it in the background (:func:`keep_provenance`)."""

    parts: frozenset[str]
    cells: list[str] = field(default_factory=list)  # the history before this cell, raw
    notebook: str | None = None
    folder: Path = field(default_factory=Path.cwd)  # where git is asked
    source: str = ""
    uri: str = ""


def capture(parts: frozenset[str], namespace: Mapping | None, source: str | None,
            uri: str) -> Capture:
    """Take, cheaply, what the background needs: the session's history so far and the
    notebook's path."""
    from mlmagic.core.notebook import notebook_path

    taken = Capture(parts, source=source or "", uri=uri)
    if "history" in parts:
        taken.cells = _history_before_this_cell()
    if parts & {"notebook", "git"}:
        path = notebook_path(namespace)
        taken.notebook = path if path and Path(path).is_absolute() else None
        if taken.notebook and Path(taken.notebook).parent.is_dir():
            taken.folder = Path(taken.notebook).parent
    return taken


def keep_provenance(parts: frozenset[str], namespace: Mapping | None, source: str | None,
                    uri: str, keep: Callable[[str, str], list],
                    set_tag: Callable[[str, str], None]) -> threading.Thread | None:
    """Keep the ``parts`` of a tracked cell's provenance: take the history and the notebook's
    path now, gather the rest in a background thread whose tags go to ``set_tag`` (the run's
    recorder) and whose texts go to ``keep(text, name)`` (which returns the threads uploading
    it, if any). Join the returned thread before the recorder closes. Never raises: a failure
    is one line."""
    try:
        taken = capture(parts, namespace, source, uri)
    except Exception as error:
        notify(f"the run is tracked, but what reproduces it was not kept: "
               f"{type(error).__name__}: {error_line(error, uri)}")
        return None

    def work() -> None:
        try:
            texts, tags, problems = gather(taken)
            for key, value in tags.items():
                set_tag(key, value)
            uploads = [thread for name, text in texts.items() for thread in keep(text, name)]
            for upload in filter(None, uploads):
                upload.join()
        except Exception as error:
            problems = [f"{type(error).__name__}: {error_line(error, uri)}"]
        if problems:
            notify("the run is tracked, but not all of what reproduces it was kept: "
                   + "; ".join(problems))

    thread = threading.Thread(target=work, daemon=True, name="mlmagic-provenance")
    thread.start()
    return thread


def gather(taken: Capture) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The artifacts (by name) and tags of ``taken``'s parts, masked, and a short line for
    each part that could not be taken."""
    texts, tags, problems = {}, {}, []
    literals = list(_masked_source(taken.source)[1])
    for part, take in (("history", _history), ("notebook", _notebook), ("git", _git),
                       ("environment", _environment)):
        if part not in taken.parts:
            continue
        try:
            found_texts, found_tags, found_literals = take(taken)
        except _Skipped as skipped:
            problems.append(f"{part}: {skipped}")
            continue
        except Exception as error:
            problems.append(f"{part}: {type(error).__name__}: {error_line(error, taken.uri)}")
            continue
        texts.update(found_texts)
        tags.update(found_tags)
        literals += found_literals
    hidden = _with_escaped_forms([*secret_values(taken.uri), *literals])
    texts = {name: text if name == ENVIRONMENT_ARTIFACT else _hidden(text, hidden)
             for name, text in texts.items()}  # package names and versions only
    tags = {key: _hidden(value, hidden) for key, value in tags.items()}
    return texts, tags, problems


def _hidden(text: str, secrets: list[str]) -> str:
    """``text`` with each of ``secrets`` (longest first) replaced by ***."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class _Skipped(Exception):
    """A part that is not kept, for the reason given."""


# --- history -------------------------------------------------------------------------------

def _history_before_this_cell() -> list[str]:
    """The raw cells this IPython session ran before the one running now, in order."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "history_manager", None) is None:
        return []
    return list(shell.history_manager.input_hist_raw[1:shell.execution_count])


def _history(taken: Capture) -> tuple[dict, dict, list]:
    cells, literals = [], []
    for number, raw in enumerate(taken.cells, start=1):
        if not raw.strip():
            continue
        masked, found = _masked_source(replayable(raw))
        cells.append(f"{CELL_MARK.format(number)}\n{masked.rstrip()}\n")
        literals += found
    if not cells:
        return {}, {}, literals
    text, left_out = _latest_within(cells, MAX_HISTORY_CHARS)
    header = ("# The cells this kernel ran before the tracked one, in order (mlmagic). "
              "%aml_reproduce makes a notebook of them.\n")
    if left_out:
        header += f"# The first {left_out} cell(s) are left out: the history is over " \
                  f"{MAX_HISTORY_CHARS // 1_000_000} MB.\n"
    return {HISTORY_ARTIFACT: header + "\n" + text}, {}, literals


def replayable(cell: str) -> str:
    """A cell as a replay runs it: a ``%%track`` cell is its code (the magic line kept as a
    comment, so no run is made), and magics that change something outside the kernel
    (deploy, register, submit, ...) are comments."""
    if cell.startswith("%%track"):
        line, _, body = cell.partition("\n")
        cell = f"# {line}  (tracked; replayed as plain code)\n{body}"
    return _NOT_REPLAYED.sub(r"\1# \2  # left out of a replay", cell)


def _latest_within(cells: list[str], limit: int) -> tuple[str, int]:
    """The latest cells whose text fits in ``limit`` characters, and how many were left out."""
    kept, size = [], 0
    for cell in reversed(cells):
        size += len(cell) + 1
        if size > limit:
            break
        kept.append(cell)
    return "\n".join(reversed(kept)), len(cells) - len(kept)


@functools.lru_cache(maxsize=8192)  # a session's cells come again in each tracked cell
def _masked_source(source: str) -> tuple[str, tuple[str, ...]]:
    """``source`` with its secret literals and secret magic arguments masked, and the
    literals' values (to scrub them wherever else they show)."""
    if "@" in source:
        source = mask_url_credentials(source)
    if not may_name_secret(source):
        return source, ()
    masked, found = masked_source(source)
    masked = "\n".join(_masked_magic(line) if line.lstrip().startswith(("%", "!", "# %"))
                       else line for line in masked.split("\n"))
    return masked, tuple(found)


def _masked_magic(line: str) -> str:
    """A magic's line with the value of each secret-named ``KEY=VALUE`` masked."""
    return _MAGIC_PAIR.sub(
        lambda m: f"{m.group(1)}={REDACTED}" if is_secret_name(m.group(1)) else m.group(0),
        line)


# --- notebook ------------------------------------------------------------------------------

def _notebook(taken: Capture) -> tuple[dict, dict, list]:
    if taken.notebook is None or not Path(taken.notebook).is_file():
        return {}, {}, []  # no local notebook file: a console, a script, a workspace path
    path = Path(taken.notebook)
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise _Skipped(f"{path.name} is {size / 1e6:.0f} MB, over "
                       f"{MAX_NOTEBOOK_BYTES // 1_000_000} MB")
    try:
        text = path.read_text(encoding="utf-8")
        notebook = json.loads(text)
        cells = notebook["cells"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _Skipped(f"{path.name} could not be read as a notebook "
                       f"({type(error).__name__})") from None
    literals = []
    for cell in cells:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        masked, found = _masked_source(source)
        if masked != source:
            cell["source"] = masked
        literals += found
    if not literals and all(isinstance(cell.get("source"), (str, list)) for cell in cells):
        return {NOTEBOOK_ARTIFACT: text}, {}, literals  # nothing masked: as saved
    # The C encoder (no indent) is 10x faster than the indenting one.
    return {NOTEBOOK_ARTIFACT: json.dumps(notebook, ensure_ascii=False) + "\n"}, {}, literals


# --- git -----------------------------------------------------------------------------------

def _git(taken: Capture) -> tuple[dict, dict, list]:
    """MLflow's git tags, read from the repository's files, and the uncommitted diff, from
    one ``git diff`` (which, in a subfolder too, shows the whole repository's changes)."""
    diffing = _start_git(taken.folder, "diff", "HEAD", "--no-color", "--no-ext-diff",
                         "--no-renames", "--ignore-submodules")
    state = _repository_state(taken.folder)
    diff = _git_output(diffing)
    if state is None:
        return {}, {}, []  # not a repository, or no commit yet
    commit, branch, remote = state
    tags = {COMMIT_TAG: commit}
    if branch:
        tags[BRANCH_TAG] = branch
    if remote:
        tags[REPO_URL_TAG] = remote
    if not (diff or "").strip():
        return {}, tags, []
    if len(diff) > MAX_DIFF_CHARS:
        raise _Skipped(f"the uncommitted diff is over {MAX_DIFF_CHARS // 1_000_000} MB "
                       "(the commit is tagged)")
    masked, literals = _masked_diff(diff)
    return {DIFF_ARTIFACT: masked}, tags, literals


def _repository_state(folder: Path) -> tuple[str, str | None, str | None] | None:
    """The commit, branch (None when detached) and remote URL of the repository holding
    ``folder``, read from its files (``.git/HEAD``, the refs, ``config``; a worktree's
    ``.git`` file and ``commondir`` followed), or by ``git rev-parse`` where they are not
    plain files (a reftable repository); None outside a repository or before its first
    commit."""
    git_dir = _git_dir(folder)
    if git_dir is None:
        return None
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    head = (git_dir / "HEAD").read_text().strip()
    branch = head.removeprefix("ref: ").removeprefix("refs/heads/") \
        if head.startswith("ref: ") else None
    commit = _resolved(common, head[5:]) if branch else head
    if commit is None:
        found = _git_output(_start_git(folder, "rev-parse", "HEAD")) or ""
        commit = found.strip() or None
    if commit is None:
        return None
    return commit, branch, _remote_url(common / "config")


def _git_dir(folder: Path) -> Path | None:
    for candidate in (folder, *folder.resolve().parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
            pointer = dot_git.read_text().strip().removeprefix("gitdir:").strip()
            return (candidate / pointer).resolve()
    return None


def _resolved(common: Path, ref: str) -> str | None:
    """The commit a ref names: its loose file, else its line in ``packed-refs``."""
    loose = common / ref
    if loose.is_file():
        return loose.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None


def _start_git(folder: Path, *arguments: str) -> subprocess.Popen | None:
    """A git command started in ``folder``, or None when git is not installed."""
    environment = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.Popen(["git", "-C", str(folder), *arguments], env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
    except OSError:
        return None


def _git_output(process: subprocess.Popen | None) -> str | None:
    """What a started git command printed, or None when it failed."""
    if process is None:
        return None
    try:
        out, _ = process.communicate(timeout=GIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise _Skipped(f"git {process.args[3]} took over {GIT_TIMEOUT:.0f} s") from None
    return out.decode("utf-8", "replace") if process.returncode == 0 else None


_REMOTE_SECTION = re.compile(r'^\[remote\s+"([^"]+)"\]')
_URL_ENTRY = re.compile(r"^url\s*=\s*(.+)$", re.I)


def _remote_url(config: Path) -> str | None:
    """The URL of the remote ``origin`` (else the first remote) in a repository's config
    file, without credentials."""
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    urls, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            match = _REMOTE_SECTION.match(line)
            section = match.group(1) if match else None
        elif section and (entry := _URL_ENTRY.match(line)):
            urls.setdefault(section, entry.group(1).strip().strip('"'))
    url = urls.get("origin") or next(iter(urls.values()), None)
    return without_credentials(url) if url and "://" in url else url


def _masked_diff(diff: str) -> tuple[str, list[str]]:
    """The diff with secret literals masked line by line, also inside JSON strings (a
    notebook's lines)."""
    lines, literals = [], []
    for line in diff.split("\n"):
        if may_name_secret(line):
            line, found = _masked_line(line)
            line, unquoted = _masked_unquoted(line)
            literals += [*found, *unquoted]
        lines.append(mask_url_credentials(line) if "@" in line else line)
    return "\n".join(lines), literals


def _masked_unquoted(line: str) -> tuple[str, list[str]]:
    """A diff line with the unquoted value of each secret-named ``NAME=VALUE`` or ``NAME:
    VALUE`` masked (a shell's, an ``.env``'s, YAML's or an INI file's), and those values."""
    values: list[str] = []

    def mask(match: re.Match) -> str:
        if not is_secret_name(match.group("name")):
            return match.group(0)
        values.append(match.group("value"))
        return f"{match.group('name')}{match.group('sep')}{REDACTED}"

    masked = _UNQUOTED_PAIR.sub(mask, line)
    return masked, [value for value in values if len(value) >= MIN_SECRET_LENGTH]


@functools.lru_cache(maxsize=8192)
def _masked_line(line: str) -> tuple[str, tuple[str, ...]]:
    literals: list[str] = []

    def in_json(match: re.Match) -> str:
        try:
            text = json.loads(match.group(0))
        except ValueError:
            return match.group(0)
        masked, found = _masked_source(text)
        literals.extend(found)
        return json.dumps(masked, ensure_ascii=False) if masked != text else match.group(0)

    line = _JSON_STRING.sub(in_json, line)
    masked, found = _masked_source(line)
    return masked, (*literals, *found)


# --- environment ---------------------------------------------------------------------------

def _environment(taken: Capture) -> tuple[dict, dict, list]:
    from mlmagic.core.session import current_session

    session = current_session()
    if session.packages is None:
        session.packages = installed_packages()
    header = f"# Python {platform.python_version()} ({platform.python_implementation()})\n"
    return {ENVIRONMENT_ARTIFACT: header + session.packages}, {}, []


def installed_packages() -> str:
    """The installed distributions as ``name==version`` lines, sorted, as ``pip freeze``
    lists them: read from the ``NAME-VERSION.dist-info`` folder names on ``sys.path`` (the
    packaging spec's names), the few ``.egg-info`` ones from their metadata."""
    from importlib.metadata import PathDistribution

    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                project, _, version = name[: -len(".dist-info")].partition("-")
            elif name.endswith(".egg-info"):
                meta = PathDistribution(Path(entry or ".") / name).metadata
                project, version = meta["Name"] or "", meta["Version"] or ""
            else:
                continue
            key = re.sub(r"[-_.]+", "-", project).lower()
            if key and version and key not in found:
                found[key] = f"{key}=={version}"
    return "".join(f"{line}\n" for _, line in sorted(found.items()))


def _with_escaped_forms(values: Iterable[str]) -> list[str]:
    """Each value, and the form it takes inside a JSON string (a notebook's text)."""
    every = set()
    for value in values:
        every.add(value)
        if '"' in value or "\\" in value or not value.isprintable():
            every.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return sorted(every, key=len, reverse=True)
