"""The stop tests of binary-activation networks (``relax_until(…, stop=…)``, ``EP(free_stop=…)``,
config ``rule.free_stop``; issue 24): "no_flips" stops after the first step in which no unit
flips, "settled" after the first such step in which every accumulator is also on the side of θ
its drive pulls it to. The settled stop gives the activations of the full T-step relaxation
exactly; the flip count alone can stop early (an accumulator still on its way to θ)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from binlearn.energy import (
    FREE_STOPS,
    BinaryAccumulator,
    BinaryWeights,
    Nudge,
    convolutional,
    fully_connected,
    relax,
    relax_until,
)
from binlearn.experiment import ConfigError, load_config, train
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner
from binlearn.rules import EP

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "laydevant2021"
BINARY = CONFIGS / "fc-binary-weights-activations.toml"
SMALL = ['data.dataset="digits"', "model.hidden=[24]", "model.group_size=2", "rule.free_steps=40",
         "rule.nudged_steps=4", "train.threads=1"]
SCHEDULES = ("synchronous", "even_odd")


def _fc(seed: int, gamma: float = 0.5):
    torch.manual_seed(seed)
    net = fully_connected((20,), [16, 12], 3, BinaryAccumulator(gamma=gamma), BinaryWeights(), group_size=2)
    return net, torch.rand(8, 20)


def _activations(net, state):
    return [a.clone() for a in net.activations(state)]


def _same(first, second) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("seed", range(4))
def test_settled_stops_early_with_the_activations_of_the_full_relaxation(schedule, seed):
    """Both γ of the examples; the stop fires well before T and the activations (not the
    accumulators) are those after all T steps, bit for bit."""
    for gamma in (0.5, 0.2):
        net, x = _fc(seed, gamma)
        with torch.no_grad():
            full = relax(net, x, net.initial_state(8), 300, schedule=schedule)
            settled, steps = relax_until(net, x, net.initial_state(8), 300, schedule=schedule, stop="settled")
        assert 1 < steps < 100, steps
        assert _same(_activations(net, settled), _activations(net, full))
        assert not _same(settled.layers, full.layers)  # the accumulators are still moving


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("gamma", (0.5, 0.2))
def test_settled_extrapolated_gives_the_full_state_up_to_rounding(schedule, gamma):
    """The accumulators, carried in closed form over the steps left, are those of the full
    relaxation to a few float32 ulps (T = 300 and T = 30, which some batches settle after)."""
    for seed in range(3):
        net, x = _fc(seed, gamma)
        for total in (300, 30):
            with torch.no_grad():
                full = relax(net, x, net.initial_state(8), total, schedule=schedule)
                carried, steps = relax_until(net, x, net.initial_state(8), total, schedule=schedule,
                                             stop="settled_extrapolated")
                settled, same = relax_until(net, x, net.initial_state(8), total, schedule=schedule,
                                            stop="settled")
            assert steps == same <= total
            assert _same(_activations(net, carried), _activations(net, full))
            gap = max(float((a - b).abs().max()) for a, b in zip(carried.layers, full.layers, strict=True))
            assert gap < 1e-6, gap
            if steps < total:  # the plain settled state is further away: the extrapolation did the work
                assert max(float((a - b).abs().max())
                           for a, b in zip(settled.layers, full.layers, strict=True)) > 1e-4


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_settled_on_a_binary_convnet_equals_the_full_relaxation(schedule):
    torch.manual_seed(3)
    net = convolutional((1, 12, 12), [3, 4], 3, kernel_size=3, padding=1, pool=2,
                        neuron=BinaryAccumulator(), weight=BinaryWeights(), group_size=2)
    x = torch.rand(4, 1, 12, 12)
    with torch.no_grad():
        full = relax(net, x, net.initial_state(4), 200, schedule=schedule)
        settled, steps = relax_until(net, x, net.initial_state(4), 200, schedule=schedule, stop="settled")
    assert steps < 200
    assert _same(_activations(net, settled), _activations(net, full))


def test_the_flip_count_alone_stops_too_early_where_settled_does_not():
    """γ = 0.2: after step 1 no unit has flipped yet (every accumulator starts at 1 and moves by
    at most 0.2 · (1 − u)), so "no_flips" stops at once; with γ = 0.5 (seed 1) it stops a few
    steps before a late flip. "settled" is exact in both."""
    net, x = _fc(0, gamma=0.2)
    with torch.no_grad():
        full = relax(net, x, net.initial_state(8), 300)
        flips, steps = relax_until(net, x, net.initial_state(8), 300, stop="no_flips")
    assert steps == 1
    assert not _same(_activations(net, flips), _activations(net, full))
    for schedule in SCHEDULES:
        net, x = _fc(1, gamma=0.5)
        with torch.no_grad():
            full = relax(net, x, net.initial_state(8), 300, schedule=schedule)
            flips, early = relax_until(net, x, net.initial_state(8), 300, schedule=schedule, stop="no_flips")
            settled, late = relax_until(net, x, net.initial_state(8), 300, schedule=schedule, stop="settled")
        assert early < late
        assert not _same(_activations(net, flips), _activations(net, full))
        assert _same(_activations(net, settled), _activations(net, full))


@pytest.mark.parametrize("stop", ("no_flips", "settled"))
def test_a_stopped_relaxation_is_the_same_number_of_plain_steps(stop):
    """The tests only read the loop: the state after k stopped steps is relax(…, k) bit for bit
    (settled_extrapolated then moves the accumulators on: tested above)."""
    net, x = _fc(2)
    with torch.no_grad():
        stopped, steps = relax_until(net, x, net.initial_state(8), 300, stop=stop)
        plain = relax(net, x, net.initial_state(8), steps)
    assert steps < 300
    assert _same(stopped.layers, plain.layers)


def test_bad_stop_arguments_are_one_line_errors():
    net, x = _fc(0)
    start = net.initial_state(8)
    hard = fully_connected((20,), [16], 3)  # hard-sigmoid neurons
    cases = [
        (lambda: relax_until(net, x, start, 10, stop="flips"),
         "unknown stop test 'flips'; valid: no_flips, settled, settled_extrapolated"),
        (lambda: relax_until(hard, x, hard.initial_state(8), 10, stop="settled"), "needs binary neurons"),
        (lambda: relax_until(net, x, start, 10, 1e-5, stop="settled"), "not both"),
        (lambda: relax_until(net, x, start, 10, nudge=Nudge(torch.zeros(8, 6), 0.5), stop="no_flips"),
         "for free phases"),
        (lambda: EP(10, 2, 0.5, free_stop="flips"), "unknown free_stop 'flips'"),
        (lambda: EP(10, 2, 0.5, free_tolerance=1e-5, free_stop="settled"), "give one"),
        (lambda: EP(10, 2, 0.5, free_stop="settled").estimate(hard, x, torch.zeros(8, dtype=torch.long)),
         "needs binary neurons"),
    ]
    for call, needle in cases:
        with pytest.raises(ValueError, match=needle) as error, torch.no_grad():
            call()
        assert "\n" not in str(error.value)


def test_settled_extrapolated_predicts_as_the_full_relaxation_where_settled_may_not():
    """Binary outputs tie often and the output accumulators break the ties: the plain settled
    state may predict another class than T steps; the extrapolated one does not."""
    torch.manual_seed(2)
    net = fully_connected((20,), [32], 4, BinaryAccumulator(), BinaryWeights(), group_size=3)
    x = torch.rand(256, 20)
    with torch.no_grad():
        full = relax(net, x, net.initial_state(256), 200)
        settled, _ = relax_until(net, x, net.initial_state(256), 200, stop="settled")
        carried, _ = relax_until(net, x, net.initial_state(256), 200, stop="settled_extrapolated")
    assert _same(_activations(net, settled), _activations(net, full))
    assert int((net.predict(settled) != net.predict(full)).sum()) == 1  # a tie broken the other way
    assert torch.equal(net.predict(carried), net.predict(full))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_ep_free_stop_reports_its_steps_and_keeps_the_free_activations(schedule):
    net, x = _fc(1)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    full = EP(300, 4, 0.5, schedule=schedule).estimate(net, x, y)
    settled = EP(300, 4, 0.5, schedule=schedule, free_stop="settled").estimate(net, x, y)
    assert full.free_steps == 300 and 1 < settled.free_steps < 100
    assert _same(_activations(net, settled.free_state), _activations(net, full.free_state))
    assert "free_stop='settled'" in repr(EP(300, 4, 0.5, free_stop="settled"))


def test_rule_free_stop_is_a_checked_setting_and_its_steps_are_in_the_epoch_metrics():
    for overrides, needle in ((['rule.free_stop="flips"'], "rule.free_stop"),
                              (['rule.free_stop="settled"', "rule.free_tolerance=1e-5"], "set one")):
        with pytest.raises(ConfigError, match=needle) as error:
            load_config(BINARY, [*SMALL, *overrides])
        assert "\n" not in str(error.value)
    config = load_config(CONFIGS / "fc-binary-weights.toml", [*SMALL, 'rule.free_stop="settled"'])
    with pytest.raises(ConfigError, match='needs model.neuron = "binary"'):
        build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    with pytest.raises(ConfigError, match="free_stop"):  # BPTT has no stop test
        load_config(CONFIGS / "fc-binary-weights-bptt.toml", [*SMALL, 'rule.free_stop="settled"'])
    metrics = {}
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    for stop in (None, *FREE_STOPS):
        config = load_config(BINARY, SMALL + ([f'rule.free_stop="{stop}"'] if stop else []))
        torch.manual_seed(0)
        learner = build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
        learner.train_step(x, y, LocalReducer())
        learner.train_step(x, y, LocalReducer())
        learner.predict(x)
        metrics[stop] = learner.end_epoch(1, 0.5, LocalReducer())
    assert "free_steps_mean" not in metrics[None]
    assert 1 <= metrics["no_flips"]["free_steps_mean"] <= metrics["settled"]["free_steps_mean"] < 40
    assert metrics["settled_extrapolated"]["free_steps_mean"] == metrics["settled"]["free_steps_mean"]


@pytest.mark.filterwarnings("ignore::binlearn.experiment.collapse.CollapseWarning")  # 256 digits, Bop's γ
def test_rule_free_stop_round_trips_through_the_run_directory_and_resume(tmp_path):
    run = tmp_path / "run"
    overrides = [*SMALL, 'rule.free_stop="settled"', "data.train_size=256", "data.validation_size=0"]
    train(load_config(BINARY, [*overrides, "train.epochs=1"]), run, quiet=True)
    assert 'free_stop = "settled"' in (run / "config.toml").read_text()
    train(load_config(run / "config.toml", ["train.epochs=2"]), run, resume=True, quiet=True)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert all(1 <= line["free_steps_mean"] < 40 for line in lines)
    text = (run / "config.toml").read_text()
    (run / "config.toml").write_text(text.replace('free_stop = "settled"', 'free_stop = "no_flips"'))
    with pytest.raises(ConfigError, match="rule.free_stop"):
        train(load_config(run / "config.toml", ["train.epochs=3"]), run, resume=True, quiet=True)
