"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from fsm_trainer import TrainState

modes = st.sampled_from(["train", "val"])


@st.composite
def workflows(draw: st.DrawFn, max_entries: int = 4, max_count: int = 4) -> list[tuple[str, int]]:
    """A valid workflow: 1..max_entries (mode, count) pairs with at least one train entry."""
    entries = draw(st.lists(st.tuples(modes, st.integers(1, max_count)), min_size=1, max_size=max_entries))
    if not any(m == "train" for m, _ in entries):
        k = draw(st.integers(0, len(entries) - 1))
        entries[k] = ("train", entries[k][1])
    return entries


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

states = st.builds(
    TrainState,
    epoch=st.integers(0, 10**6), iter=st.integers(0, 10**9), inner_iter=st.integers(0, 10**6),
    mode=st.sampled_from([None, "train", "val"]),
    outputs=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    phase=st.integers(-2, 8), phase_done=st.integers(0, 1000), stop=st.booleans(),
    hook_states=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
