"""binlearn.energy: hand-written drives equal autograd gradients of Φ, relaxation lowers
the energy and reaches fixed points under both schedules, states are immutable, and bad
inputs give one-line errors."""

from __future__ import annotations

import pytest
import torch

from binlearn.energy import (
    BinaryAccumulator,
    BinaryWeights,
    DivergenceError,
    DriveNudge,
    EnergyState,
    FreeDriveNudge,
    HardSigmoid,
    Nudge,
    StateNudge,
    convolutional,
    fully_connected,
    nudge_placement,
    prepare,
    relax,
    relax_step,
    relax_until,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _networks():
    torch.manual_seed(0)
    return {
        "fc_float": fully_connected((1, 6, 6), [20, 15], 4),
        "fc_binary_weights": fully_connected((1, 6, 6), [20], 3, weight=BinaryWeights(),
                                             group_size=2),
        "fc_binary_neurons": fully_connected((1, 6, 6), [16, 12], 3, neuron=BinaryAccumulator(),
                                             weight=BinaryWeights(), group_size=4),
        "conv_float": convolutional((1, 12, 12), [3, 4], 3, kernel_size=3, padding=1, pool=2),
        "conv_binary_weights_pool3": convolutional((2, 11, 11), [3], 3, kernel_size=3,
                                                   padding=[0], pool=[3], weight=BinaryWeights()),
        "conv_cross_entropy": convolutional((1, 8, 8), [2, 3], 5, kernel_size=3, padding=1,
                                            readout="cross_entropy"),
    }


@pytest.mark.parametrize("name", list(_networks()))
def test_drives_equal_autograd_gradient_of_phi(name):
    net = _networks()[name]
    torch.manual_seed(1)
    x = torch.rand(5, *net.input_shape)
    state = EnergyState(tuple(torch.rand(5, *shape) for shape in net.layer_shapes))
    drives = net.drives(x, state)
    activations = [a.detach().clone().requires_grad_(True) for a in net.activations(state)]

    phi = 0
    inputs = (x, *activations)
    for index, coupling in enumerate(net.couplings):
        phi = phi + coupling.phi(inputs[index], inputs[index + 1], coupling.effective_weight(),
                                 coupling.bias)
    grads = torch.autograd.grad(phi.sum(), activations)
    for layer, (drive, grad) in enumerate(zip(drives, grads, strict=True)):
        assert drive.shape == grad.shape
        torch.testing.assert_close(drive, grad, atol=1e-5, rtol=1e-5, msg=f"layer {layer + 1}")


def test_phi_matches_network_phi_and_parameter_derivatives():
    net = _networks()["conv_float"]
    x = torch.rand(4, *net.input_shape)
    state = EnergyState(tuple(torch.rand(4, *s) for s in net.layer_shapes))
    activations = (x, *net.activations(state))
    for index, coupling in enumerate(net.couplings):
        weight = coupling.effective_weight().detach().clone().requires_grad_(True)
        bias = coupling.bias.detach().clone().requires_grad_(True)
        phi = coupling.phi(activations[index], activations[index + 1], weight, bias).sum()
        expected_w, expected_b = torch.autograd.grad(phi, (weight, bias))
        cache = coupling.drive_up(activations[index], weight.detach(), bias.detach())[1]
        got_w, got_b = coupling.derivatives(activations[index], activations[index + 1], cache)
        torch.testing.assert_close(got_w, expected_w, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_b, expected_b, atol=1e-5, rtol=1e-5)


def test_even_odd_relaxation_decreases_energy_and_both_schedules_reach_the_same_fixed_point():
    torch.manual_seed(2)
    net = fully_connected((1, 8, 8), [30, 20], 5, gain=0.5)
    x = torch.rand(6, *net.input_shape)
    state = net.initial_state(6)
    context = prepare(net, x)
    energies = [net.energy(x, state)]
    with torch.no_grad():
        for _ in range(25):
            state = relax(net, x, state, 1, schedule="even_odd", context=context)
            energies.append(net.energy(x, state))
    energies = torch.stack(energies)
    assert bool((energies[1:] <= energies[:-1] + 1e-5).all()), "energy went up"
    assert float(energies[-1].mean()) < float(energies[0].mean())
    with torch.no_grad():
        sync_state, sync_steps = relax_until(net, x, net.initial_state(6), 500, 1e-5, schedule="synchronous")
        async_state, async_steps = relax_until(net, x, net.initial_state(6), 500, 1e-5, schedule="even_odd")
    assert sync_steps < 500 and async_steps < 500
    assert async_steps < sync_steps  # each layer jumps to its minimiser: fewer steps
    for a, b in zip(sync_state.layers, async_state.layers, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_synchronous_relaxation_reaches_a_fixed_point_for_conv():
    torch.manual_seed(3)
    net = convolutional((1, 12, 12), [3, 4], 3, kernel_size=3, padding=1, pool=2)
    x = torch.rand(4, *net.input_shape)
    with torch.no_grad():
        state, steps = relax_until(net, x, net.initial_state(4), 400, 1e-6, schedule="synchronous")
    assert steps < 400
    again = relax(net, x, state, 1)
    for a, b in zip(state.layers, again.layers, strict=True):
        assert float((a - b).abs().max()) < 1e-6


def test_relax_returns_a_new_state_and_in_place_equals_autograd_path():
    net = _networks()["fc_binary_neurons"]
    x = torch.rand(3, *net.input_shape)
    start = net.initial_state(3)
    kept = start.clone()
    target = net.output_cost.target(torch.tensor([0, 1, 2]))
    with torch.no_grad():
        fast = relax(net, x, start, 7, nudge=Nudge(target, 0.5))
    with torch.enable_grad():
        slow = relax(net, x, start, 7, nudge=Nudge(target, 0.5))
    for a, b, c in zip(start.layers, kept.layers, fast.layers, strict=True):
        assert torch.equal(a, b) and c is not a
    for a, b in zip(fast.layers, slow.layers, strict=True):
        torch.testing.assert_close(a, b.detach())


def test_binary_neurons_communicate_heaviside_of_accumulator():
    neuron = BinaryAccumulator(gamma=0.5, threshold=0.5)
    state = torch.tensor([0.0, 0.5, 0.50001, 1.0])
    assert neuron.activation(state).tolist() == [0.0, 0.0, 1.0, 1.0]  # Heaviside(0) = 0
    new = neuron.step(torch.tensor([1.0, 0.0]), torch.tensor([-3.0, 3.0]))
    assert new.tolist() == [0.0, 1.0]
    torch.testing.assert_close(neuron.step(torch.tensor([0.2]), torch.tensor([0.6])),
                               torch.tensor([0.4]))


def test_output_groups_target_and_prediction():
    net = fully_connected((1, 2, 2), [3], 3, group_size=2)
    cost = net.output_cost
    assert cost.target(torch.tensor([1])).tolist() == [[0, 0, 1, 1, 0, 0]]
    output = torch.tensor([[0.9, 0.0, 0.6, 0.6, 0.1, 0.1]])
    assert cost.predict(output, output).tolist() == [1]


def test_divergence_names_layer_and_step():
    net = fully_connected((1, 4, 4), [6], 3)
    with torch.no_grad():
        net.couplings[1].weight[0, 0] = float("nan")
    # the output starts at 0 and 0 · NaN = NaN: the hidden layer is poisoned at step 1
    with pytest.raises(DivergenceError, match=r"layer 1 of 2 .* at step 1;"):
        relax(net, torch.rand(2, 1, 4, 4), net.initial_state(2), 10)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: fully_connected((1, 4, 4), [0], 3), "hidden sizes"),
        (lambda: convolutional((1, 4, 4), [2, 2], 3, kernel_size=3, padding=0, pool=2), "too small"),
        (lambda: convolutional((1, 8, 8), [2, 2], 3, padding=[1]), "one value per conv layer"),
        (lambda: HardSigmoid(slope=0), "slope"),
        (lambda: BinaryAccumulator(gamma=0), "gamma"),
        (lambda: BinaryWeights(scale="median"), "scale"),
    ],
)
def test_bad_models_raise_one_line_errors(build, message):
    with pytest.raises(ValueError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


def test_bad_relaxation_arguments():
    net = fully_connected((1, 4, 4), [6], 3)
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="schedule"):
        relax(net, x, net.initial_state(2), 3, schedule="random")
    with pytest.raises(ValueError, match="input of shape"):
        relax(net, torch.rand(2, 1, 5, 5), net.initial_state(2), 3)
    with pytest.raises(ValueError, match="steps"):
        relax(net, x, net.initial_state(2), -1)


def test_state_nudge_is_clamped_and_free_drive_nudge_is_fixed_by_the_free_output():
    torch.manual_seed(5)
    net = fully_connected((1, 4, 4), [12], 3, neuron=BinaryAccumulator(), weight=BinaryWeights(),
                          group_size=2)
    x = torch.rand(5, *net.input_shape)
    target = net.output_cost.target(torch.tensor([0, 1, 2, 0, 1]))
    with torch.no_grad():
        free = relax(net, x, net.initial_state(5), 6)
        # "state": one step, then β (t − s), then the clamp to the neuron's range [0, 1]
        strong = relax(net, x, free, 3, Nudge(target, 4.0, StateNudge()))
        assert float(strong.layers[-1].min()) >= 0.0 and float(strong.layers[-1].max()) <= 1.0
        # "free_drive": the push β (t − s_out) is taken once, from the phase's starting output
        beta = 0.7
        push = beta * (target - free.layers[-1])
        manual = free
        for _ in range(3):
            drives = net.drives(x, manual)
            manual = EnergyState((net.neurons[0].step(manual.layers[0], drives[0]),
                                  net.neurons[1].step(manual.layers[1], drives[1] + push)))
        nudged = relax(net, x, free, 3, Nudge(target, beta, FreeDriveNudge()))
        for a, b in zip(nudged.layers, manual.layers, strict=True):
            torch.testing.assert_close(a, b)
        assert not torch.equal(nudged.layers[-1], relax(net, x, free, 3).layers[-1])


def test_sparse_binary_product_equals_the_gemm_exactly_and_declines_what_it_cannot_do():
    from binlearn.binary.kernels.sparse import sparse_binary_product

    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 2, (300, 70), generator=generator).float() * 2 - 1
    for values in ((torch.rand(9, 300, generator=generator) < 0.1).float(),           # {0, 1}
                   torch.randint(-1, 2, (9, 300), generator=generator).float()):    # {−1, 0, 1}
        rows_used = sparse_binary_product(values, rows)
        if values.min() < 0:
            assert rows_used is None  # a third non-zero: denser than SPARSE_DENSITY
            continue
        assert torch.equal(rows_used, values @ rows)
        out = torch.full((9, 70), 7.0)
        assert sparse_binary_product(values, lambda: rows, out) is out and torch.equal(out, values @ rows)
    signed = torch.zeros(4, 300)
    signed[:, ::17] = torch.tensor([1.0, -1.0]).repeat(9)[:18]
    assert torch.equal(sparse_binary_product(signed, rows), signed @ rows)
    pixels = torch.zeros(4, 300)
    pixels[0, 3] = 0.5  # not binary: declined, the caller keeps its GEMM
    assert sparse_binary_product(pixels, rows) is None
    assert sparse_binary_product(signed.double(), rows.double()) is None


@pytest.mark.parametrize("schedule", ["synchronous", "even_odd"])
def test_binary_relaxation_with_row_adds_is_bit_identical_to_the_gemm_path(monkeypatch, schedule):
    import binlearn.binary.kernels.sparse as sparse_kernels
    import binlearn.energy.plan as plan

    torch.manual_seed(3)
    net = fully_connected((1, 8, 8), [96, 80], 4, neuron=BinaryAccumulator(), weight=BinaryWeights(),
                          group_size=5)
    x = (torch.rand(6, *net.input_shape) < 0.3).float()
    target = net.output_cost.target(torch.tensor([0, 1, 2, 3, 0, 1]))
    used = []
    original = plan.sparse_binary_product

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        used.append(result is not None)
        return result

    monkeypatch.setattr(plan, "sparse_binary_product", counted)
    monkeypatch.setattr(sparse_kernels, "SPARSE_DENSITY", 1.0)  # row adds whatever the activity
    states = {}
    for sparse in (False, True):
        used_before = len(used)
        with torch.no_grad():
            context = prepare(net, x, sparse_products=sparse)
            free = relax(net, x, net.initial_state(6), 12, schedule=schedule, context=context)
            states[sparse] = relax(net, x, free, 6, schedule=schedule, nudge=Nudge(target, 1.0),
                                   context=context).layers
        assert any(used[used_before:]) == sparse  # the switch decides (up- and down-drives)
    for a, b in zip(states[False], states[True], strict=True):
        assert torch.equal(a, b)


def _relaxation_cases():
    torch.manual_seed(7)
    binary = dict(neuron=BinaryAccumulator(), weight=BinaryWeights())
    return {
        "fc_float": fully_connected((1, 6, 6), [20, 15], 4, gain=2.0),
        "fc_float_one_layer": fully_connected((1, 6, 6), [], 4, gain=2.0),
        "fc_binary_weights": fully_connected((1, 6, 6), [20], 3, weight=BinaryWeights(), group_size=2),
        "fc_binary_neurons": fully_connected((1, 6, 6), [40, 24], 3, group_size=4, **binary),
        "conv_float": convolutional((1, 10, 10), [3, 4], 3, kernel_size=3, padding=1, pool=2, gain=2.0),
        "conv_binary_neurons": convolutional((1, 10, 10), [4], 3, kernel_size=3, padding=1, pool=2,
                                             group_size=2, **binary),
        "conv_cross_entropy": convolutional((1, 8, 8), [2, 3], 5, kernel_size=3, padding=1,
                                            readout="cross_entropy"),
    }


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
@pytest.mark.parametrize("schedule", ["synchronous", "even_odd"])
@pytest.mark.parametrize("name", list(_relaxation_cases()))
def test_fused_relaxation_equals_repeated_pure_steps_bit_for_bit(name, schedule, grad):
    """relax(…, n) is n × relax_step: free phase, then every nudge placement from it."""
    net = _relaxation_cases()[name]
    torch.manual_seed(11)
    batch = 5
    x = torch.rand(batch, *net.input_shape)
    target = net.output_cost.target(torch.arange(batch) % net.output_cost.num_classes)
    placements = [DriveNudge(), StateNudge()]
    if not net.output_cost.readout:
        placements.append(FreeDriveNudge())
    with torch.set_grad_enabled(grad):
        context = prepare(net, x)
        free = relax(net, x, net.initial_state(batch), 9, schedule=schedule, context=context)
        stepped = net.initial_state(batch)
        for _ in range(9):
            stepped = relax_step(net, x, stepped, schedule=schedule, context=context)
        for a, b in zip(free.layers, stepped.layers, strict=True):
            assert torch.equal(a, b), "free phase"
        for placement in placements:
            for beta in (0.7, -0.4):
                nudge = Nudge(target, beta, placement)
                fused = relax(net, x, free, 4, nudge=nudge, schedule=schedule, context=context)
                stepped = free
                for _ in range(4):
                    stepped = relax_step(net, x, stepped, nudge, schedule, context=context, start=free)
                for a, b in zip(fused.layers, stepped.layers, strict=True):
                    assert torch.equal(a, b), f"{placement!r}, β = {beta}"
                assert not torch.equal(fused.layers[-1], relax(net, x, free, 4, schedule=schedule,
                                                              context=context).layers[-1])


def test_relax_step_is_pure_and_follows_its_equation_on_a_two_layer_net():
    torch.manual_seed(4)
    net = fully_connected((1, 3, 3), [5], 2, gain=3.0)
    x = torch.rand(2, *net.input_shape)
    state = EnergyState((torch.rand(2, 5), torch.rand(2, 2)))
    kept = state.clone()
    (w1, w2), (b1, b2) = (c.weight for c in net.couplings), (c.bias for c in net.couplings)
    h, y = state.layers
    target = net.output_cost.target(torch.tensor([0, 1]))
    with torch.no_grad():
        new = relax_step(net, x, state, Nudge(target, 0.5, StateNudge()), "even_odd")
    # even/odd: the hidden layer first, from the old output; then the output from the new hidden layer
    h_new = (x.flatten(1) @ w1.t() + b1 + y @ w2).clamp(0, 1)
    y_new = ((h_new @ w2.t() + b2).clamp(0, 1) + 0.5 * (target - y)).clamp(0, 1)
    torch.testing.assert_close(new.layers[0], h_new)
    torch.testing.assert_close(new.layers[1], y_new)
    for a, b in zip(state.layers, kept.layers, strict=True):
        assert torch.equal(a, b)


def test_placements_are_objects_named_once_for_configs():
    assert nudge_placement("drive") == DriveNudge() and nudge_placement("free_drive") == FreeDriveNudge()
    assert [nudge_placement(p.name) for p in (DriveNudge(), StateNudge(), FreeDriveNudge())] == [
        DriveNudge(), StateNudge(), FreeDriveNudge()]
    assert Nudge(torch.zeros(1), 1.0).placement == DriveNudge()
    with pytest.raises(ValueError, match="unknown nudge placement 'output'; valid: drive, state, free_drive"):
        nudge_placement("output")
    net = fully_connected((1, 4, 4), [6], 3)
    with pytest.raises(TypeError, match="NudgePlacement"):
        relax(net, torch.rand(2, 1, 4, 4), net.initial_state(2), 3, Nudge(torch.zeros(2, 3), 1.0, "state"))


@pytest.mark.parametrize("schedule", ["synchronous", "even_odd"])
def test_record_hook_sees_every_step_and_equals_step_by_step_relaxation(schedule):
    net = _networks()["fc_binary_neurons"]
    x = torch.rand(4, *net.input_shape)
    start = net.initial_state(4)
    seen = []
    with torch.no_grad():
        context = prepare(net, x)
        final = relax(net, x, start, 5, schedule=schedule, context=context, step_offset=3,
                      record=lambda step, layers: seen.append((step, [s.clone() for s in layers])))
        current = pure = start
        for index in range(5):
            current = relax(net, x, current, 1, schedule=schedule, context=context)
            pure = relax_step(net, x, pure, schedule=schedule, context=context)
            step, layers = seen[index]
            assert step == 4 + index
            for a, b, c in zip(layers, current.layers, pure.layers, strict=True):
                assert torch.equal(a, b) and torch.equal(a, c)
    assert len(seen) == 5
    for a, b in zip(seen[-1][1], final.layers, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("pool", [2, 3])
def test_conv_pooling_on_channels_last_gives_the_same_maxima_and_indices_with_ties(pool):
    """ConvPool pools channels-last on the CPU (faster): the drives and routing positions
    equal NCHW pooling's bit for bit, ties (flat regions, a silent channel) included."""
    import torch.nn.functional as F

    from binlearn.energy import ConvPool

    torch.manual_seed(8)
    coupling = ConvPool(3, 5, kernel_size=3, padding=1, pool=pool, weight=BinaryWeights())
    bottom = torch.rand(4, 3, 12, 12).round(decimals=1)
    bottom[:, :, :6] = 0.0  # the top half convolves to the bias alone: four-way ties
    weight = coupling.effective_weight()
    pooled, (indices, size) = coupling.drive_up(bottom, weight, coupling.bias)
    expected, expected_indices = F.max_pool2d(F.conv2d(bottom, weight, coupling.bias, padding=1), pool,
                                              return_indices=True)
    assert torch.equal(pooled, expected) and torch.equal(indices, expected_indices)
    assert pooled.is_contiguous() and indices.is_contiguous()
    top = torch.rand_like(pooled)
    routed = coupling.drive_down(top, weight, (indices, size), torch.zeros_like(bottom))
    expected_down = F.conv_transpose2d(F.max_unpool2d(top, expected_indices, pool, output_size=size), weight,
                                       padding=1)
    assert torch.equal(routed, expected_down)
