"""``python -m mlmagic autoload [on|off]``: load mlmagic in every IPython session and notebook
kernel (the default profile, or ``--profile NAME``), or stop doing so."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m mlmagic", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    autoload = commands.add_parser("autoload", help="add mlmagic to (or remove it from) the "
                                   "IPython profile's extensions")
    autoload.add_argument("state", nargs="?", choices=("on", "off"), default="on")
    autoload.add_argument("--profile", default="default", help="IPython profile (default: "
                          "default)")
    args = parser.parse_args(argv)
    from mlmagic.core.setup import autoload as set_autoload

    path = set_autoload(args.state == "on", profile=args.profile)
    if args.state == "on":
        print(f"mlmagic: every IPython session and notebook kernel of the profile "
              f"'{args.profile}' loads mlmagic now ({path}).")
    else:
        print(f"mlmagic: the profile '{args.profile}' no longer loads mlmagic ({path}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
