"""TrainState: immutability, the fast constructor, and the cattrs round trip."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from strategies import states

from fsm_trainer import TrainState
from fsm_trainer.serialize import StateFormatError, state_from_json, state_to_json, structure, unstructure
from fsm_trainer.state import make_state


@given(states)
def test_cattrs_round_trip(s):
    """structure(unstructure(s)) == s for any state with JSON-able outputs and hook states."""
    assert structure(unstructure(s), TrainState) == s
    assert state_from_json(state_to_json(s)) == s


@given(states)
def test_fast_constructor_equals_regular(s):
    """make_state builds the same record as TrainState(...) from the same fields."""
    fields = attrs.astuple(s, recurse=False)
    assert make_state(*fields) == TrainState(*fields)
    assert type(make_state(*fields)) is TrainState


def test_state_is_frozen():
    """Assigning a field raises."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        TrainState().epoch = 3  # type: ignore[misc]


@pytest.mark.parametrize(("data", "match"), [
    ({"epoch": "3"}, r"expected an int.*\$TrainState.epoch"),
    ({"epoch": 1, "bogus": 2}, "bogus"),
    ({"stop": 1}, r"true or false.*stop"),
    ({"outputs": [1]}, "mapping"),
    ({"mode": 3}, "string"),
])
def test_bad_data_is_rejected_with_paths(data, match):
    """Structuring bad data names the field path and the problem."""
    with pytest.raises(StateFormatError, match=match):
        structure(data, TrainState)


def test_tensors_in_outputs_become_numbers():
    """A loss tensor in outputs is saved as a plain number."""
    torch = pytest.importorskip("torch")
    s = TrainState(outputs={"loss": torch.tensor(0.25), "log_vars": {"loss": 0.25}, "num_samples": 4})
    assert unstructure(s)["outputs"] == {"loss": 0.25, "log_vars": {"loss": 0.25}, "num_samples": 4}
