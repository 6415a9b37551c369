"""The ``mad-sim`` command.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets
``func(args) -> int`` as the handler.  Errors from :mod:`mad_sim.errors` are
printed as one line on stderr (no traceback) and exit with status 2, and so
are operating-system errors (``OSError``: a full disk, a permission; ``-vv``
shows their traceback).  Output paths are checked before the work starts
(:mod:`mad_sim.cli.outputs`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from mad_sim import __version__
from mad_sim.errors import MadSimError

# Subcommand modules, in the order `mad-sim --help` lists them.
SUBCOMMANDS = ["demo", "info", "convert", "render", "replay", "generate", "train", "eval"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mad-sim", description="Closed-loop driving simulation on the MAD video world model.")
    parser.add_argument("--version", action="version", version=f"mad-sim {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mad_sim.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mad_sim.cli.{name}":
                continue  # not built in this checkout
            raise
        module.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)], format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except MadSimError as exc:
        print(f"mad-sim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine said no (a full disk, a permission): one line too, unless -vv
        if args.verbose >= 2:
            raise
        print(f"mad-sim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
