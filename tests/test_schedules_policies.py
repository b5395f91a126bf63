"""The pure schedules: hand-computed values, properties, validation, preview; no torch needed."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fsm_trainer.schedules import (
    CosineAnnealing,
    CosineRestart,
    Cyclic,
    FlatCosineAnnealing,
    LinearAnnealing,
    OneCycle,
    OneCycleMomentum,
    Poly,
    ScheduleConfigError,
    Step,
    bind,
    build_lr_schedule,
    build_momentum_schedule,
    plot_schedule,
    schedule_values,
    warmup_factor,
)


def test_imports_without_torch():
    """fsm_trainer.schedules imports and computes with torch made unimportable."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from fsm_trainer.schedules import schedule_values\n"
        "print(schedule_values(dict(policy='step', step=[1]), 1.0, max_epochs=2, epoch_len=1))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1.0, 0.1]"


# ----------------------------------------------------------------------------- hand-computed


def test_step_milestones_and_interval():
    """step=[8, 11] decays by gamma at epochs 8 and 11; an int step decays every `step` epochs."""
    v = schedule_values(dict(policy="step", step=[8, 11]), 0.02, max_epochs=12, epoch_len=1)
    assert v[:8] == [0.02] * 8
    assert v[8:11] == pytest.approx([0.002] * 3, rel=1e-12)
    assert v[11] == pytest.approx(0.0002, rel=1e-12)
    v = schedule_values(dict(policy="step", step=3, gamma=0.5, min_lr=0.3), 1.0, max_epochs=9, epoch_len=1)
    assert v == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3]


def test_exp_poly_inv_by_iteration():
    """exp, poly and inv by iteration give their textbook closed forms."""
    kw = {"by": "iter", "max_iters": 4}
    assert schedule_values(dict(policy="exp", gamma=0.5, by_epoch=False), 1.0, **kw) == [1.0, 0.5, 0.25, 0.125]
    assert schedule_values(dict(policy="poly", power=2.0, min_lr=0.1, by_epoch=False), 1.1, **kw) == \
        pytest.approx([1.1, 0.1 + 1.0 * 0.5625, 0.1 + 0.25, 0.1 + 0.0625])
    assert schedule_values(dict(policy="inv", gamma=1.0, power=2.0, by_epoch=False), 1.0, **kw) == \
        pytest.approx([1.0, 1 / 4, 1 / 9, 1 / 16])


def test_cosine_and_linear_annealing():
    """Cosine and linear annealing go from base toward min_lr (absolute or as a ratio)."""
    v = schedule_values(dict(policy="CosineAnnealing", min_lr=0.0), 1.0, max_epochs=4, epoch_len=1)
    assert v == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2])
    v = schedule_values(dict(policy="LinearAnnealing", min_lr_ratio=0.5), 2.0, max_epochs=4, epoch_len=1)
    assert v == pytest.approx([2.0, 1.75, 1.5, 1.25])


def test_flat_cosine_and_restart():
    """Flat-cosine stays flat until round(start_percent * max); restarts start at their weight."""
    cfg = dict(policy="FlatCosineAnnealing", start_percent=0.5, min_lr=0.0)
    v = schedule_values(cfg, 1.0, max_epochs=4, epoch_len=1)
    assert v == pytest.approx([1.0, 1.0, 1.0, 0.5])
    v = schedule_values(
        dict(policy="CosineRestart", periods=[2, 2], restart_weights=[1, 0.5], min_lr=0.0), 1.0,
        max_epochs=4, epoch_len=1,
    )
    assert v == pytest.approx([1.0, 0.5, 0.5, 0.25])


def test_cyclic_and_one_cycle_by_hand():
    """Linear cyclic and OneCycle give the hand-computed triangle shapes."""
    v = schedule_values(
        dict(policy="cyclic", target_ratio=(3, 1), step_ratio_up=0.5, anneal_strategy="linear"), 1.0,
        by="iter", max_iters=4,
    )
    assert v == pytest.approx([1.0, 2.0, 3.0, 2.0])
    v = schedule_values(
        dict(policy="OneCycle", max_lr=1.0, pct_start=0.5, div_factor=4, final_div_factor=1, anneal_strategy="linear"),
        by="iter", max_iters=6,
    )
    assert v == pytest.approx([0.25, 0.625, 1.0, 0.75, 0.5, 0.25])


def test_warmups_by_hand():
    """constant, linear and exp warmups scale the regular LR; momentum warmup divides by the same factor."""
    base = dict(policy="fixed", by_epoch=False, warmup_iters=4, warmup_ratio=0.25)
    kw = {"by": "iter", "max_iters": 6}
    assert schedule_values(dict(base, warmup="constant"), 1.0, **kw) == [0.25] * 4 + [1.0] * 2
    assert schedule_values(dict(base, warmup="linear"), 1.0, **kw) == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1, 1])
    assert schedule_values(dict(base, warmup="exp"), 1.0, **kw) == pytest.approx(
        [0.25, 0.25**0.75, 0.25**0.5, 0.25**0.25, 1, 1])
    m = schedule_values(
        dict(policy="step", step=100, by_epoch=False, warmup="constant", warmup_iters=2, warmup_ratio=0.9), 0.9,
        kind="momentum", **kw,
    )
    assert m == pytest.approx([1.0, 1.0, 0.9, 0.9, 0.9, 0.9])


def test_warmup_by_epoch_in_an_epoch_run():
    """warmup_by_epoch counts warmup_iters in epochs of the train loader's length."""
    v = schedule_values(
        dict(policy="fixed", warmup="constant", warmup_iters=2, warmup_ratio=0.5, warmup_by_epoch=True), 1.0,
        max_epochs=3, epoch_len=3,
    )
    assert v == [0.5] * 6 + [1.0] * 3


def test_one_cycle_momentum_uses_its_own_bounds():
    """OneCycle momentum starts at max_momentum, dips to base_momentum at the LR peak, and comes back."""
    v = schedule_values(dict(policy="OneCycle", base_momentum=0.8, max_momentum=1.0, pct_start=0.5,
                             anneal_strategy="linear"), kind="momentum", by="iter", max_iters=6)
    assert v == pytest.approx([1.0, 0.9, 0.8, 0.8 + 0.2 / 3, 0.8 + 0.4 / 3, 1.0])


# ----------------------------------------------------------------------------- properties

bases = st.floats(1e-4, 10.0)
ratios = st.floats(0.0, 1.0)


@given(base=bases, ratio=ratios, total=st.integers(1, 500), data=st.data())
def test_annealing_is_bounded_and_monotone(base, ratio, total, data):
    """Cosine, linear and flat-cosine annealing stay in [min, base] and never increase."""
    policy = data.draw(st.sampled_from([
        CosineAnnealing(min_ratio=ratio), LinearAnnealing(min_ratio=ratio),
        FlatCosineAnnealing(data.draw(st.floats(0.0, 1.0)), min_ratio=ratio), Poly(data.draw(st.floats(0.1, 3.0))),
    ]))
    vals = [policy(base, t, total) for t in range(total)]
    lo = 0.0 if isinstance(policy, Poly) else base * ratio
    assert all(lo - 1e-12 <= v <= base + 1e-12 for v in vals)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(vals))


@given(base=bases, gamma=st.floats(0.01, 1.0), steps=st.lists(st.integers(1, 50), min_size=1, max_size=4),
       min_lr=st.none() | st.floats(0.0, 1e-3))
def test_step_is_non_increasing_and_clipped(base, gamma, steps, min_lr):
    """Step with gamma <= 1 never increases and never goes below min_lr."""
    p = Step(tuple(sorted(steps)), gamma, min_lr)
    vals = [p(base, t, 60) for t in range(60)]
    assert all(b <= a for a, b in itertools.pairwise(vals))
    if min_lr is not None:
        assert min(vals) >= min_lr


@given(kind=st.sampled_from(["constant", "linear", "exp"]), n=st.integers(1, 200), ratio=st.floats(0.01, 1.0))
def test_warmup_is_bounded_monotone_and_continuous_at_its_end(kind, n, ratio):
    """Warmup factors lie in [ratio, 1], never decrease, and linear/exp reach 1 exactly at warmup's end."""
    f = [warmup_factor(kind, i, n, ratio) for i in range(n + 1)]
    assert all(ratio - 1e-12 <= x <= 1 + 1e-12 for x in f)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(f))
    if kind != "constant":
        assert f[n] == pytest.approx(1.0)
        # the step into the regular value is no bigger than one warmup step
        assert 1 - f[n - 1] <= (1 - ratio) / n * (1 if kind == "linear" else -math.log(ratio) + 1) + 1e-12


@given(base=bases, times=st.integers(1, 5), per=st.integers(2, 40), up=st.floats(0.0, 0.99),
       r=st.tuples(st.floats(1.0, 20.0), st.floats(1e-5, 1.0)), anneal=st.sampled_from(["cos", "linear"]))
def test_cyclic_is_periodic_and_bounded(base, times, per, up, r, anneal):
    """Without decay (gamma=1) every cycle repeats the first; values stay between the two targets."""
    p = Cyclic(r, times, up, anneal)
    total = per * times
    vals = [p(base, t, total) for t in range(total)]
    for t in range(per, total):
        assert vals[t] == pytest.approx(vals[t - per], rel=1e-12)
    lo, hi = base * min(r[1], 1), base * max(r)
    assert all(lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9) for v in vals)


@given(base=bases, period=st.integers(1, 30), n=st.integers(1, 5), ratio=ratios)
def test_cosine_restart_with_equal_periods_is_periodic(base, period, n, ratio):
    """Equal periods and unit weights repeat the same cosine; each restart returns to base."""
    p = CosineRestart((period,) * n, (1.0,) * n, min_ratio=ratio)
    vals = [p(base, t, period * n) for t in range(period * n)]
    for t in range(period, period * n):
        assert vals[t] == pytest.approx(vals[t - period], rel=1e-12)
    assert all(vals[k * period] == pytest.approx(base) for k in range(n))


@given(max_lr=st.floats(1e-3, 10.0), total=st.integers(4, 300), pct=st.floats(0.05, 0.95),
       three=st.booleans(), anneal=st.sampled_from(["cos", "linear"]))
def test_one_cycle_peaks_at_max_lr_and_ends_low(max_lr, total, pct, three, anneal):
    """OneCycle starts at max_lr / div_factor, never exceeds max_lr and ends at its minimum.

    Holds when the phases are ordered (mmcv does not check; its schedule is odd otherwise).
    """
    assume(pct * total >= 1 and (not three or 2 * pct * total - 2 <= total - 1))
    p = OneCycle(max_lr, pct_start=pct, anneal=anneal, three_phase=three)
    base = p.base_values(1, "SGD")[0]
    vals = [p(base, t, total) for t in range(total)]
    assert vals[0] == pytest.approx(base)
    assert max(vals) <= max_lr * (1 + 1e-9)
    assert vals[-1] == pytest.approx(base / 1e4)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("config", "words"), [
    (dict(policy="cosine"), ["policy", "CosineAnnealing"]),
    (dict(policy="step", step=[8, 11], gama=0.1), ["'gama'", "gamma"]),
    (dict(policy="step"), ["requires", "'step'"]),
    (dict(policy="step", step=[1], warmup="cos", warmup_iters=2), ["warmup='cos'", "'linear'"]),
    (dict(policy="step", step=[1], warmup="linear", warmup_iters=0), ["warmup_iters=0", "positive int"]),
    (dict(policy="step", step=[1], warmup="exp", warmup_iters=3, warmup_ratio=0), ["warmup_ratio=0", "(0, 1]"]),
    (dict(policy="CosineAnnealing", min_lr=0.0, min_lr_ratio=0.1), ["exactly one", "min_lr_ratio"]),
    (dict(policy="OneCycle", max_lr=0.1, by_epoch=True), ["by_epoch=True", "by_epoch=False"]),
    (dict(policy="cyclic", anneal_strategy="tri"), ["anneal_strategy", "'cos'", "'linear'"]),
])
def test_errors_name_the_key_and_what_is_allowed(config, words):
    """Every rejection names the offending key and the allowed values."""
    with pytest.raises(ScheduleConfigError) as info:
        build_lr_schedule(**config)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("config", [
    dict(policy="cosineannealing", min_lr=0.0),          # mmcv title-cases it to 'Cosineannealing'
    dict(policy="ONECYCLE", max_lr=0.1),
    dict(policy="step", step=(2, 4)),                      # mmcv wants a list, not a tuple
    dict(policy="cyclic", target_ratio=10),                # mmcv wants a float or a tuple
    dict(policy="cyclic", target_ratio=[10, 1e-4]),
    dict(policy="FlatCosineAnnealing", start_percent=1, min_lr=0.0),  # mmcv wants a float
    dict(policy="OneCycle", max_lr=(0.1, 0.2), pct_start=0),
])
def test_accepts_more_where_mmcv_rejection_is_an_accident(config):
    """Spelling and container-type variants mmcv rejects by accident build a schedule."""
    assert build_lr_schedule(**config).policy_name


def test_run_checks():
    """Configs that cannot drive the run are rejected before it starts."""
    s = build_lr_schedule(policy="step", step=[2])
    with pytest.raises(ScheduleConfigError, match="by_epoch=True needs an epoch-based run"):
        s.check_run("iter", max_iters=10)
    s = build_lr_schedule(policy="fixed", by_epoch=False, warmup="linear", warmup_iters=1, warmup_by_epoch=True)
    with pytest.raises(ScheduleConfigError, match="warmup_by_epoch"):
        s.check_run("iter", max_iters=10)
    with pytest.raises(ScheduleConfigError, match="total_steps"):
        build_lr_schedule(policy="OneCycle", max_lr=0.1, total_steps=5).check_run("iter", max_iters=10)
    with pytest.raises(ScheduleConfigError, match="cyclic_times"):
        build_lr_schedule(policy="cyclic", cyclic_times=11).check_run("iter", max_iters=10)
    with pytest.raises(ScheduleConfigError, match="periods"):
        build_lr_schedule(policy="CosineRestart", periods=[2], min_lr=0).check_run("epoch", max_epochs=3, epoch_len=1)
    with pytest.raises(ScheduleConfigError, match="max_epochs"):
        build_lr_schedule(policy="poly").check_run("epoch", max_epochs=None, epoch_len=2)


def test_momentum_builder_has_its_own_policies_and_defaults():
    """Momentum takes step/cosine/linear/cyclic/OneCycle only, warmup_ratio defaults to 0.9."""
    s = build_momentum_schedule(policy="step", step=[1], warmup="constant", warmup_iters=1)
    assert s.warmup_ratio == 0.9 and s.policy.gamma == 0.5
    with pytest.raises(ScheduleConfigError, match="allowed"):
        build_momentum_schedule(policy="poly")
    with pytest.raises(ScheduleConfigError, match="warmup_by_epoch"):
        build_momentum_schedule(policy="step", step=[1], warmup_by_epoch=True)


# ----------------------------------------------------------------------------- preview


def test_schedule_values_matches_value_per_iteration():
    """schedule_values is Schedule.value at each (epoch, iter) of the run."""
    cfg = dict(policy="CosineAnnealing", min_lr_ratio=0.1, warmup="linear", warmup_iters=3)
    s = build_lr_schedule(**cfg)
    v = schedule_values(cfg, 0.1, max_epochs=3, epoch_len=4)
    assert len(v) == 12
    assert v == [s.value(0.1, epoch=i // 4, iter=i, max_epochs=3, max_iters=12, epoch_len=4) for i in range(12)]
    with pytest.raises(ScheduleConfigError, match="needs base"):
        schedule_values(cfg, max_epochs=3, epoch_len=4)


def test_plot_schedule_without_matplotlib_says_how_to_install(monkeypatch):
    """Without matplotlib, plot_schedule raises ImportError naming the 'plot' extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"fsm-trainer\[plot\]"):
        plot_schedule(dict(policy="fixed"), 0.1, max_epochs=1, epoch_len=1)


def test_plot_schedule_draws_the_values():
    """plot_schedule draws one point per train iteration."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_schedule(dict(policy="step", step=[1]), 0.1, max_epochs=2, epoch_len=3)
    ys = list(ax.lines[0].get_ydata())
    assert ys == schedule_values(dict(policy="step", step=[1]), 0.1, max_epochs=2, epoch_len=3)
    plt.close("all")


@given(total=st.integers(1, 200), times=st.integers(1, 4), up=st.floats(0.0, 0.99), pct=st.floats(0.0, 1.0),
       three=st.booleans(), anneal=st.sampled_from(["cos", "linear"]), gamma=st.floats(0.1, 1.0))
def test_bound_forms_equal_the_closed_forms(total, times, up, pct, three, anneal, gamma):
    """bind(policy, total) (the hooks' precomputed form) gives exactly policy(base, t, total)."""
    assume(total // times > 0)
    for p, base in [
        (Cyclic((5.0, 0.1), times, up, anneal, gamma), 0.1),
        (OneCycle(1.0, pct_start=pct, anneal=anneal, three_phase=three), 0.04),
        (OneCycleMomentum(0.85, 0.95, pct_start=pct, anneal=anneal, three_phase=three), (0.85, 0.95)),
    ]:
        f = bind(p, total)
        for t in range(total):
            try:
                want = p(base, t, total)
            except ValueError:  # OneCycle phases out of order (mmcv fails there too)
                with pytest.raises(ValueError):
                    f(base, t)
                continue
            assert f(base, t) == want
