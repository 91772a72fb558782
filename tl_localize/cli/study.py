"""``tl-localize study run | status | report``: many models, networks and tasks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import Parser
from ._output import quiet_loading


def _cmd_study_run(args: argparse.Namespace) -> int:
    from ..study import run_study

    with quiet_loading(args):  # models load inside, if any job is left to run
        result = run_study(
            args.spec, args.out, executor=args.executor, address=args.address,
            max_parallel=args.max_parallel, retry_failed=args.retry_failed, force=args.force,
            progress=not args.quiet,
        )  # fmt: skip
    counts = result.run_counts
    status = result.status()["status"].value_counts().to_dict()
    print(
        f"study {result.study.name!r}: ran {len(counts['ran'])} job(s), skipped "
        f"{len(counts['skipped'])} finished or failed before, {len(counts['failed'])} failed; "
        f"model loads {counts['loads']}; now {status}"
    )
    if len(counts["failed"]):
        print(result.failures()[["model", "job", "error"]].to_string(index=False))
    print(f"wrote {args.out}/ (results.csv, verdicts.csv, failures.csv, jobs/)")
    return 0


def _cmd_study_status(args: argparse.Namespace) -> int:
    from ..study import study_status

    frame = study_status(args.out)
    counts = frame["status"].value_counts().to_dict()
    print(frame.drop(columns=["error"]).to_string(index=False))
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        print(failed[["model", "job", "error"]].to_string(index=False))
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def _cmd_study_report(args: argparse.Namespace) -> int:
    from ..report import build_study_report, check_page, write_page

    path = Path(args.page) if args.page else Path(args.out) / "report.html"
    if args.page:
        check_page(path)  # before the work
    write_page(build_study_report(args.out), path, default=not args.page)
    print(f"wrote {path}")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    """The study group; its own commands (run, status, report) are returned."""
    study = sub.add_parser("study", help="many models, networks and tasks in one run")
    study_sub = study.add_subparsers(dest="study_command", required=True, parser_class=Parser)
    run = study_sub.add_parser("run", help="run (or resume) a study")
    run.add_argument("spec", help="the study's TOML file")
    run.add_argument("--out", required=True, help="the study's folder (resumed if it exists)")
    run.add_argument("--executor", default="local", choices=["local", "ray"])
    run.add_argument("--address", default=None, help="a Ray cluster: auto or ray://host:port")
    run.add_argument("--max-parallel", type=int, default=None, help="models at once (Ray)")
    run.add_argument("--retry-failed", action="store_true", help="rerun only failed jobs")
    run.add_argument(
        "--force",
        action="store_true",
        help="run in a folder holding another study; load models estimated not to fit",
    )
    run.set_defaults(func=_cmd_study_run)
    status = study_sub.add_parser("status", help="every job: done, running, failed, pending")
    status.add_argument("out", help="a study folder")
    status.set_defaults(func=_cmd_study_status)
    report = study_sub.add_parser("report", help="the study's page (headline table first)")
    report.add_argument("out", help="a study folder")
    report.add_argument("--page", default=None, help="the page to write (default OUT/report.html)")
    report.set_defaults(func=_cmd_study_report)
    return [run, status, report]
