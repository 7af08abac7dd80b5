"""``pco-writer layout list|show NAME|check FILE``: the layouts, readable from the shell."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["COMMANDS", "add_layout_command"]

EXIT_OK, EXIT_BAD = 0, 2


def add_layout_command(commands: Any) -> None:
    """Register ``layout`` and its sub-commands on the main parser's sub-parsers."""
    p = commands.add_parser("layout", help="list, show or check file layouts")
    sub = p.add_subparsers(required=True, metavar="ACTION")
    sub.add_parser("list", help="the built-in layouts").set_defaults(handler=_list)
    show = sub.add_parser("show", help="print a layout file and its parameters")
    show.add_argument("name", help="a built-in name (tomcat, nxtomo) or a layout file")
    show.set_defaults(handler=_show)
    check = sub.add_parser("check", help="check a layout file; every mistake with its path")
    check.add_argument("file", help="a layout file (YAML or JSON) or a built-in name")
    check.set_defaults(handler=_check)


COMMANDS = [add_layout_command]


def _list(args: argparse.Namespace) -> int:
    from pco_writer.layouts import builtin_names, load_layout

    for name in builtin_names():
        print(f"{name:10} {load_layout(name).description}")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from pco_writer.errors import LayoutError
    from pco_writer.layouts import load_layout, read_layout_text

    try:
        layout = load_layout(args.name)
        text, origin = read_layout_text(args.name)
    except LayoutError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD
    print(f"# {origin}")
    print(text.rstrip())
    if layout.parameters:
        print("\n# parameters (REST /parameters):")
    for name, p in layout.parameters.items():
        flags = "required" if p.required else "optional"
        flags += f", default {p.default!r}" if p.default is not None else ""
        units = f" [{p.units}]" if p.units else ""
        print(f"#   {name}: {p.type}{units}, {flags}. {p.doc}".rstrip())
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from pco_writer.errors import LayoutError
    from pco_writer.layouts import load_layout

    try:
        layout = load_layout(args.file)
    except LayoutError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD
    n_nodes = len(layout.walk())
    print(
        f"{args.file}: layout {layout.name!r} is valid ({n_nodes} nodes, frames at "
        f"{layout.frames_path()}, parameters: {', '.join(layout.parameters) or 'none'})"
    )
    return EXIT_OK
