"""``tl-localize check-model`` and ``tl-localize tasks``."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_loading_options, add_untrained_options, model_from_args


def _cmd_check_model(args: argparse.Namespace) -> int:
    from ..checks import check_model

    model = model_from_args(args)
    frame = check_model(model, generation=not args.no_generation)
    with_tolerance = frame.assign(ok=frame["passed"].map({True: "ok", False: "FAILED"}))
    print(with_tolerance.to_string(index=False))
    failed = frame[~frame["passed"]]
    if len(failed):
        print(f"{len(failed)} check(s) failed: {', '.join(failed['check'])}")
        return 1
    print(f"all {len(frame)} checks passed")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from ..tasks import TASKS

    for name, task in sorted(TASKS.items()):
        needs = f" (needs --{', --'.join(o.replace('_', '-') for o in task.required)})"
        attrib = "; attribution task" if task.attributable else ""
        print(f"{name}: {task.description}{needs if task.required else ''}{attrib}")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    chk = sub.add_parser("check-model", help="check a model's wiring (logits, pooling, hooks)")
    chk.add_argument("model", nargs="?", default=None, help="as --model elsewhere")
    add_loading_options(chk)
    chk.add_argument("--no-generation", action="store_true", help="skip the generation check")
    add_untrained_options(chk)
    chk.set_defaults(func=_cmd_check_model)
    tasks = sub.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=_cmd_tasks)
    return [chk, tasks]
