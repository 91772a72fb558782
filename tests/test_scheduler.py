"""The study's scheduler without Ray, files or models: which jobs run (resume and failure
states), dependencies first, the models' start order, how many run at once (CPU slots and
memory), the threads each gets; and a simulated run of the Ray executor's loop over it."""

import pytest

from tl_localize.study.plan import Job
from tl_localize.study.scheduler import (
    Resources,
    Schedule,
    order_jobs,
    pending_jobs,
    schedule,
)

GIB = 2**30


def job(model, name, key="k", depends=()):
    return Job(model, name, "evaluate", key, depends=tuple(depends))


def model_plan(model):
    """A model's plan as plan_study orders it: localize, intact, then the ablations."""
    loc = job(model, "localize-lang", "kl")
    deps = (loc.id,)
    return [
        loc,
        job(model, "eval-t-intact", "ki"),
        job(model, "eval-t-lang-1pct-selected", "ks", deps),
        job(model, "eval-t-lang-1pct-uniform-0", "ku", deps),
    ]


# -- which jobs run -----------------------------------------------------------------------
def test_pending_jobs_follow_each_jobs_state():
    plan = model_plan("a") + model_plan("b")
    a_loc, a_intact, a_sel, a_uni = plan[:4]
    states = {
        a_loc.id: {"status": "done", "key": "kl"},
        a_intact.id: {"status": "failed", "key": "ki"},  # failed with these very settings
        a_sel.id: {"status": "failed", "key": "old"},  # failed with other settings
        a_uni.id: {"status": "running", "key": "ku"},  # interrupted
    }
    done = {a_loc.id, plan[4].id}
    todo, skipped = pending_jobs(plan, states, done)
    assert [j.id for j in skipped] == [a_loc.id, a_intact.id, plan[4].id]
    assert todo == {"a": [a_sel, a_uni], "b": plan[5:]}  # per model, plan order
    # --retry-failed: only what failed, whatever its key; done jobs stay done
    todo, skipped = pending_jobs(plan, states, done, retry_failed=True)
    assert todo == {"a": [a_intact, a_sel]}
    assert len(skipped) == len(plan) - 2
    # a job done with its current key is never rerun, whatever its state file says
    todo, _ = pending_jobs(plan, {a_loc.id: {"status": "failed", "key": "kl"}}, {a_loc.id},
                           retry_failed=True)  # fmt: skip
    assert todo == {}
    # nothing ran yet: everything runs
    todo, skipped = pending_jobs(plan, {}, set())
    assert todo == {"a": plan[:4], "b": plan[4:]} and skipped == []


# -- dependencies -------------------------------------------------------------------------
def test_jobs_run_after_what_they_depend_on():
    loc, intact, selected, uniform = model_plan("a")
    shuffled = [selected, intact, uniform, loc]
    assert order_jobs(shuffled) == [intact, loc, selected, uniform]
    assert order_jobs(model_plan("a")) == model_plan("a")  # the plan's order is kept
    # a dependency done before (not among the jobs) does not hold anything back
    assert order_jobs([uniform, selected]) == [uniform, selected]
    # a chain: c needs b needs a
    a, b = job("m", "a"), job("m", "b", depends=["m/a"])
    c = job("m", "c", depends=["m/b"])
    assert order_jobs([c, b, a]) == [a, b, c]
    with pytest.raises(ValueError, match="depend on each other"):
        order_jobs([job("m", "x", depends=["m/y"]), job("m", "y", depends=["m/x"])])


def test_the_schedule_orders_each_models_jobs():
    loc, _, selected, uniform = model_plan("a")
    plan = schedule({"a": [uniform, selected, loc]}, Resources(cpus=2))
    assert plan.jobs["a"] == (loc, uniform, selected)


# -- models at once -----------------------------------------------------------------------
SIZES = {"big": 135_000_000, "mid": 60_000_000, "tiny": 2_000_000}


def todo_of(*labels):
    return {label: model_plan(label) for label in labels}


def test_largest_first_and_cpu_slots():
    plan = schedule(todo_of("tiny", "big", "mid"), Resources(cpus=2, sizes=SIZES))
    assert plan.order == ("big", "mid", "tiny")
    # on 2 CPUs the tiny model's share is far under half a CPU: no slot of its own
    assert plan.parallel == 2 and plan.threads == 1
    four = schedule(todo_of("tiny", "big", "mid"), Resources(cpus=4, sizes=SIZES))
    assert four.parallel == 2 and four.threads == 2  # tiny (0.04 CPU) runs after another
    # on 64 CPUs each model gets a slot (tiny's share: 0.65 CPU)
    wide = schedule(todo_of("tiny", "big", "mid"), Resources(cpus=64, sizes=SIZES))
    assert wide.parallel == 3 and wide.threads == 21
    # max_parallel caps it, and turns the small-model rule off
    one = schedule(todo_of("tiny", "big", "mid"), Resources(cpus=64, sizes=SIZES, max_parallel=1))
    assert one.parallel == 1 and one.threads == 64
    capped = schedule(todo_of("tiny", "big"), Resources(cpus=2, sizes=SIZES, max_parallel=2))
    assert capped.parallel == 2
    # a cluster keeps a slot per model, up to its CPUs
    cluster = Resources(cpus=2, sizes=SIZES, elastic=False)
    assert schedule(todo_of("tiny", "big", "mid"), cluster).parallel == 2
    # unknown sizes count as the largest known
    unknown = schedule(todo_of("tiny", "x"), Resources(cpus=4, sizes={"tiny": 10, "x": None}))
    assert unknown.parallel == 2 and set(unknown.order) == {"tiny", "x"}
    # nothing to run
    empty = schedule({}, Resources(cpus=4))
    assert empty.order == () and empty.start([], []) == []


def test_start_respects_the_slots_and_waits_in_order():
    plan = schedule(todo_of("big", "mid", "tiny"), Resources(cpus=64, sizes=SIZES, max_parallel=2))
    waiting = list(plan.order)
    assert plan.start(waiting, []) == ["big", "mid"]
    assert plan.start(["tiny"], ["big", "mid"]) == []  # both slots taken
    assert plan.start(["tiny"], ["mid"]) == ["tiny"]  # one freed


def test_models_start_together_only_while_their_memory_fits():
    needed = {"big": 6 * GIB, "mid": 3 * GIB, "tiny": 1 * GIB, "gpu": 10 * GIB}
    pools = {"big": "cpu", "mid": "cpu", "tiny": "cpu", "gpu": "cuda:0"}
    resources = Resources(
        cpus=64, sizes={**SIZES, "gpu": 10**9}, needed=needed, pools=pools,
        memory={"cpu": 8 * GIB, "cuda:0": 12 * GIB}, max_parallel=4,
    )  # fmt: skip
    plan = schedule(todo_of("big", "mid", "tiny", "gpu"), resources)
    assert plan.order == ("gpu", "big", "mid", "tiny") and plan.parallel == 4
    # the GPU model draws on the GPU's memory, not the CPU's; big (6) fits in 8 GiB, then
    # mid (6 + 3 > 8) does not, and tiny waits behind it: the order is never passed over
    assert plan.start(list(plan.order), []) == ["gpu", "big"]
    assert plan.start(["mid", "tiny"], ["gpu", "big"]) == []
    # big done: mid (3) and tiny (1) fit together beside the GPU model
    assert plan.start(["mid", "tiny"], ["gpu"]) == ["mid", "tiny"]
    # alone, a model always starts (one that cannot fit alone was refused or forced)
    huge = Resources(cpus=4, needed={"big": 100 * GIB}, pools={"big": "cpu"},
                     memory={"cpu": GIB})  # fmt: skip
    assert schedule(todo_of("big"), huge).start(["big"], []) == ["big"]
    # unknown needs, or no memory given (a cluster): only the slots count
    free = schedule(todo_of("big", "mid"), Resources(cpus=64, sizes=SIZES, needed=needed))
    assert free.start(["big", "mid"], []) == ["big", "mid"]
    no_need = Resources(cpus=64, sizes=SIZES, needed={"big": 6 * GIB}, pools=pools,
                        memory={"cpu": 8 * GIB})  # fmt: skip
    assert schedule(todo_of("big", "mid"), no_need).start(["big", "mid"], []) == ["big", "mid"]


def test_thread_shares_follow_the_models_running():
    resources = Resources(cpus=16, sizes={"a": 100, "b": 300})
    plan = schedule(todo_of("a", "b"), resources)
    assert plan.threads == 8  # what each actor starts with
    assert plan.threads_of("b", ["a", "b"]) == 12 and plan.threads_of("a", ["a", "b"]) == 4
    assert plan.threads_of("a", ["a"]) == 16  # b done: a takes its CPUs
    fixed = schedule(todo_of("a", "b"), Resources(cpus=16, sizes={"a": 100, "b": 300},
                                                  elastic=False))  # fmt: skip
    assert fixed.threads_of("a", ["a"]) == fixed.threads == 8  # a cluster keeps its share


# -- the executor's loop over the schedule ----------------------------------------------------
def simulate(plan: Schedule, seconds: dict[str, float]) -> list[tuple[float, str, str]]:
    """The Ray executor's loop with a clock instead of Ray: each model's jobs run one at a
    time, ``seconds[model]`` each; returns (time, event, model) in the order they happen."""
    waiting, running, events, now = list(plan.order), {}, [], 0.0
    left = {label: len(plan.jobs[label]) for label in plan.order}
    while waiting or running:
        for label in plan.start(waiting, list(running)):
            waiting.remove(label)
            running[label] = now + seconds[label]
            events.append((now, "start", label))
        label = min(running, key=lambda m: (running[m], plan.order.index(m)))
        now = running.pop(label)
        left[label] -= 1
        if left[label]:
            running[label] = now + seconds[label]
        else:
            events.append((now, "done", label))
    return events


def test_a_simulated_run_never_exceeds_the_slots_or_the_memory():
    needed = {"big": 5 * GIB, "mid": 4 * GIB, "small": 2 * GIB, "tiny": GIB}
    sizes = {"big": 400, "mid": 300, "small": 200, "tiny": 100}
    resources = Resources(cpus=3, sizes=sizes, needed=needed, memory={"cpu": 8 * GIB},
                          pools=dict.fromkeys(needed, "cpu"))  # fmt: skip
    plan = schedule(todo_of(*needed), resources)
    events = simulate(plan, {"big": 3.0, "mid": 2.0, "small": 1.0, "tiny": 1.0})
    running: set[str] = set()
    for _, event, label in events:
        if event == "start":
            running.add(label)
            assert len(running) <= plan.parallel
            assert sum(needed[m] for m in running) <= 8 * GIB, running
        else:
            running.remove(label)
    starts = [label for _, event, label in events if event == "start"]
    assert starts == ["big", "mid", "small", "tiny"]  # largest first, none passed over
    assert {label for _, e, label in events if e == "done"} == set(needed)
    # mid (4) does not fit beside big (5): big runs its 4 jobs alone (small and tiny wait
    # behind mid), then the three others start together (4 + 2 + 1 fit in 8 GiB)
    assert [(t, label) for t, e, label in events if e == "start"] == [
        (0.0, "big"), (12.0, "mid"), (12.0, "small"), (12.0, "tiny")
    ]  # fmt: skip
