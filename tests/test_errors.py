"""The constructors' argument checks share one helper and one message shape (fast tier)."""

import numpy as np
import pandas as pd
import pytest
import torch

from tl_localize import BrainData, Contrast, LocalizeError, Units
from tl_localize.errors import Expected, check_arguments

FRAME = pd.DataFrame({"y": [1.0, 2.0]})


@pytest.mark.parametrize(
    "call, start, got",
    [
        (lambda: Contrast(5, {}, "a", "b"), "Contrast(...): name must be a string", "got int (5)"),
        (
            lambda: Units(np.zeros((2, 2), dtype=bool), "resid_post", "m"),
            "Units(...): mask must be a bool tensor",
            "got ndarray (array([[False, False], [False, False]]))",
        ),
        (
            lambda: Units(torch.zeros(2, 2, dtype=torch.bool), "resid_post", 3),
            "Units(...): model_name must be the model's name",
            "got int (3)",
        ),
        (
            lambda: BrainData("ab", FRAME),
            "BrainData(...): sentences must be a list of sentences",
            "got str ('ab'); build it from a table",
        ),
        (
            lambda: BrainData(["a b", 7], FRAME),
            "BrainData(...): sentences must hold strings only",
            "found 7 (int); build it from a table",
        ),
    ],
)
def test_wrong_types_name_the_argument_in_one_line(call, start, got):
    with pytest.raises(LocalizeError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(start) and got in message and message.endswith("."), message
    assert "\n" not in message


def test_missing_or_unknown_arguments_are_left_to_init():
    class Thing:
        def __init__(self, name: str) -> None:
            self.name = name

    rules = {"name": Expected(str, "a string")}
    check_arguments("Thing", Thing.__init__, (), {"nom": 1}, rules)  # a TypeError in __init__
    check_arguments("Thing", Thing.__init__, ("x",), {}, rules)
    with pytest.raises(LocalizeError, match=r"^Thing\(\.\.\.\): name must be a string, got"):
        check_arguments("Thing", Thing.__init__, (1,), {}, rules)
    long = "x" * 100
    with pytest.raises(LocalizeError, match=r"\(\['x{55}\.\.\.\)\.$"):
        check_arguments("Thing", Thing.__init__, ([long],), {}, rules)
