"""``tl-localize report``: one HTML page from results folders."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.folder, args.out)
    print(f"wrote {path}")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    rep = sub.add_parser("report", help="one self-contained HTML page from a results folder")
    rep.add_argument("folder", help="a results folder, or a folder of them")
    rep.add_argument("--out", default=None, help="the page to write (default FOLDER/report.html)")
    rep.set_defaults(func=_cmd_report)
    return [rep]
