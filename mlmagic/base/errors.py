"""The exception family of mlmagic.

Every error a user can cause (a wrong option, an unreachable server, an unknown experiment)
is an :class:`MlmagicError`. IPython shows it as one line, without a traceback, because the
class defines ``_render_traceback_``; the cell still counts as failed, so "Run All" stops.
"""


class MlmagicError(Exception):
    """A problem the user can fix, explained in one line: what is wrong and what to do."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class InvalidInput(MlmagicError, ValueError):
    """An option or value that mlmagic cannot use."""


class ConfigError(MlmagicError):
    """A configuration file that cannot be read."""


class ConnectionFailed(MlmagicError):
    """A tracking backend that cannot be reached or refuses the credentials."""


class PermissionDenied(ConnectionFailed):
    """A store that refused the credentials (HTTP 401) or the permission (HTTP 403)."""


class NotFound(MlmagicError, LookupError):
    """An experiment, run or model that does not exist."""


class MissingExtra(MlmagicError, ImportError):
    """An optional dependency that is not installed; the message names the pip command."""


class RunFailed(MlmagicError):
    """A submitted script or job that ended FAILED; its run keeps the details."""
