# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Binary Equilibrium Propagation from scratch
#
# This tutorial builds one training step of **binary Equilibrium Propagation** (EP;
# Scellier & Bengio 2017, with binary weights as in Laydevant et al. 2021) out of its four
# pieces — *relax*, *nudge*, *estimate*, *flip* — first by hand in a few lines of torch, then
# with binlearn's functions, checking at each step that the two agree. Then it trains a
# binary-weight network on scikit-learn's embedded 8×8 digits (no download) and plots the
# energy and the neuron states during a relaxation.
#
# Run it as a script (`python docs/tutorials/01_binary_ep.py` from the repository root) or
# as a notebook (`jupytext --to notebook docs/tutorials/01_binary_ep.py`). Figures are shown
# inline in a notebook and saved to the folder named by `BINLEARN_TUTORIAL_OUT` (a new
# temporary folder when unset). It takes well under two minutes on two CPU cores.
#
# ## The model
#
# An energy-based network has an input $x$ (clamped) and dynamical layers
# $s_1, \dots, s_L$ (here one hidden layer of 256 units and an output layer of 10) coupled
# symmetrically to their neighbours. Its energy is
#
# $$E(x, s) = \tfrac12 \sum_l \lVert s_l \rVert^2 - \Phi(x, s), \qquad
#   \Phi(x, s) = \sum_{l} s_{l+1} \cdot \left(W_l\, s_l + b_l\right), \quad s_0 = x .$$
#
# With **binary weights** each coupling is $W_l = \alpha_l\, w_l$ with signs
# $w_l \in \{-1, +1\}$ and one positive scale $\alpha_l$ per layer. The neurons are hard
# sigmoids, $s \in [0, 1]$.

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from binlearn.data import load_dataset
from binlearn.energy import BinaryWeights, EnergyState, Nudge, fully_connected, prepare, relax, relax_step
from binlearn.rules import BPTT, EP, Bop

started = time.perf_counter()
# One thread: these tensors are small, and a second thread mostly waits for the first (on a
# busy machine, where it is often descheduled, the waits made this page 10-100x slower).
torch.set_num_threads(1)
OUT = Path(os.environ.get("BINLEARN_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="binlearn-tutorial-01-"))
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name):
    """Save a figure under OUT; in a notebook, also show it inline."""
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display

        if get_ipython() is not None:
            display(Image(filename=str(path)))  # the saved PNG, whatever matplotlib's backend
    except ImportError:  # a plain Python without IPython: the file is the figure
        pass
    print(f"figure written: {path}")


torch.manual_seed(0)
data = load_dataset("digits")  # embedded 8x8 digits, pixels in [0, 1]
net = fully_connected(data.input_shape, [256], data.num_classes, weight=BinaryWeights())
print(net)
print("train / test images:", len(data.y_train), "/", len(data.y_test))
print("weights are signs:", all(set(c.weight.unique().tolist()) == {-1.0, 1.0} for c in net.couplings))
print("alpha per layer:", [round(float(c.scale), 4) for c in net.couplings])

# %% [markdown]
# ## 1. Relax: the free phase
#
# Inference is a minimisation of $E$ over the states. Each layer's **drive** is the
# derivative of $\Phi$ with respect to it — input from below plus feedback from above —
#
# $$u_l = \frac{\partial \Phi}{\partial s_l} = W_{l-1} s_{l-1} + b_{l-1} + W_l^\top s_{l+1},$$
#
# and the hard sigmoid's step $s_l \leftarrow \min(\max(u_l, 0), 1)$ is the exact minimiser
# of $E$ over $s_l$ with its neighbours fixed. The *synchronous* schedule updates every
# layer at once from the previous state (Ernoult et al. 2019, Laydevant et al. 2021); after
# $T$ steps the network sits near a fixed point $s^0$, and the prediction is the most
# active output unit.
#
# Here is one synchronous step written out by hand for our two couplings, checked against
# binlearn's `relax_step` (the readable definition that the fast `relax` loop is tested
# against).


# %%
def energy(x, hidden, output):
    """E(x, s) per sample, written out for x -> hidden -> output."""
    (w0, w1), (b0, b1) = ([c.effective_weight() for c in net.couplings], [c.bias for c in net.couplings])
    phi = (hidden * (x.flatten(1) @ w0.T + b0)).sum(1) + (output * (hidden @ w1.T + b1)).sum(1)
    return 0.5 * (hidden.pow(2).sum(1) + output.pow(2).sum(1)) - phi


def step_by_hand(x, hidden, output):
    """One synchronous step: every layer from the state before the step."""
    (w0, w1), (b0, b1) = ([c.effective_weight() for c in net.couplings], [c.bias for c in net.couplings])
    hidden_drive = x.flatten(1) @ w0.T + b0 + output @ w1  # up from the input, down from the output
    output_drive = hidden @ w1.T + b1
    return hidden_drive.clamp(0, 1), output_drive.clamp(0, 1)


x, y = data.x_train[:64], data.y_train[:64]
FREE_STEPS, NUDGED_STEPS, BETA = 30, 10, 0.3
with torch.no_grad():
    hidden, output = (layer.clone() for layer in net.initial_state(len(x)).layers)  # all zeros
    state = net.initial_state(len(x))
    context = prepare(net, x)  # per batch: effective weights, the input's drive, the fast plan
    for _ in range(FREE_STEPS):
        hidden, output = step_by_hand(x, hidden, output)
        state = relax_step(net, x, state, context=context)
    by_library = relax(net, x, net.initial_state(len(x)), FREE_STEPS, context=context)
print("by hand vs relax_step, largest difference:",
      max(float((a - b).abs().max()) for a, b in zip((hidden, output), state.layers, strict=True)))
print("relax_step vs relax (the fused loop):",
      max(float((a - b).abs().max()) for a, b in zip(state.layers, by_library.layers, strict=True)))
print("energy by hand vs net.energy:", float((energy(x, hidden, output) - net.energy(x, state)).abs().max()))

# %% [markdown]
# The three agree to float32 rounding (the fast loop computes the same products in another
# order). From here on the library does the relaxing.
#
# ## 2. Nudge: the second phase
#
# EP learns from a **nudged** phase: starting at $s^0$, the output is pushed towards the
# one-hot target $t$ by the force $-\beta\, \partial C / \partial s_L$ of the cost
# $C = \tfrac12 \lVert s_L - t \rVert^2$, for $K$ more steps. binlearn's default places the
# force inside the output's step (`DriveNudge`): $u_L \leftarrow u_L + \beta (t - s_L)$.
# The network then settles near $s^\beta$, a minimum of the total energy $F = E + \beta C$.
# The change travels back through the symmetric couplings, so the hidden layer moves too.
#
# We record the states at every step (the `record` hook of `relax`) and the energy, to plot
# both phases.


# %%
def trace(x, y, steps=FREE_STEPS, nudged_steps=NUDGED_STEPS, beta=BETA, schedule="synchronous"):
    """Energies and states at every step of a free and a nudged phase on one batch."""
    target = net.output_cost.target(y)
    context = prepare(net, x)
    states = []

    def keep(step, layers):
        states.append(tuple(layer.clone() for layer in layers))

    with torch.no_grad():
        free = relax(net, x, net.initial_state(len(x)), steps, schedule=schedule, context=context,
                     record=keep)
        relax(net, x, free, nudged_steps, Nudge(target, beta), schedule, context, step_offset=steps,
              record=keep)

        energies = torch.stack([net.energy(x, EnergyState(layers)) for layers in states])  # (steps, batch)
        costs = torch.stack([net.output_cost.loss(layers[-1], layers[-1], target) for layers in states])
    return energies, costs, states


energies, costs, states = trace(x, y)
total = energies.clone()
total[FREE_STEPS:] += BETA * costs[FREE_STEPS:]  # F = E + βC in the nudged phase
rises = int((energies[1:FREE_STEPS].mean(1) > energies[: FREE_STEPS - 1].mean(1) + 1e-6).sum())
print(f"free phase: mean energy {float(energies[0].mean()):.3f} after step 1, "
      f"{float(energies[FREE_STEPS - 1].mean()):.3f} after step {FREE_STEPS} (rose at {rises} steps)")
print(f"nudged phase: mean cost C {float(costs[FREE_STEPS - 1].mean()):.3f} at s0, "
      f"{float(costs[-1].mean()):.3f} at s^beta")


# %%
def plot_relaxation(energies, total, states, title, name):
    steps = torch.arange(1, energies.shape[0] + 1)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(steps, energies.mean(1), label="E (mean over the batch)")
    axes[0].plot(steps[FREE_STEPS:], total[FREE_STEPS:].mean(1), "--", label="F = E + βC (nudged phase)")
    axes[0].set(xlabel="relaxation step", ylabel="energy", title="energy")
    hidden = torch.stack([layers[0][0] for layers in states])  # sample 0, (steps, 256)
    output = torch.stack([layers[-1][0] for layers in states])  # sample 0, (steps, 10)
    moved = (hidden[-1] - hidden[FREE_STEPS - 1]).abs().argsort(descending=True)[:8]
    axes[1].plot(steps, hidden[:, moved])
    axes[1].set(xlabel="relaxation step", ylabel="state", title="8 hidden units of image 0 (most nudged)")
    for k in range(output.shape[1]):
        axes[2].plot(steps, output[:, k], lw=2.5 if k == int(y[0]) else 1,
                     label=f"class {k}" + (" (target)" if k == int(y[0]) else ""))
    axes[2].set(xlabel="relaxation step", ylabel="state", title="output units of image 0")
    axes[2].legend(fontsize=7, ncol=2)
    for axis in axes:
        axis.axvline(FREE_STEPS + 0.5, color="grey", ls=":")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, y=1.04)
    show(fig, name)


plot_relaxation(energies, total, states, "untrained network: free phase (steps 1-30), nudged phase (31-40)",
                "relaxation-untrained.png")

# %% [markdown]
# **What the figure shows.** Left: the mean energy $E$ over the batch after each step (the
# dotted line separates the phases; in the nudged phase the dashed line adds $\beta C$).
# Middle: the eight hidden units of the first image that moved most during the nudged phase.
# Right: the ten output units of that image, the target class thick. An untrained network
# settles within a few steps; the nudge then raises the target unit and lowers the others,
# and the hidden units it reaches move with them. Note that the synchronous schedule is not
# guaranteed to lower $E$ at every step (only a schedule that updates each layer with its
# neighbours fixed is, such as `schedule="even_odd"`); the printed line above counts the
# steps at which the mean energy rose in this run.
#
# ## 3. Estimate: the EP gradient
#
# The weight update only needs the two fixed points. Because $\partial \Phi / \partial W_l =
# s_{l+1} s_l^\top$ is local to the coupling, EP's estimate of the loss gradient is
#
# $$\hat g_{W_l} = -\frac{1}{\beta B}\left[s^\beta_{l+1} (s^\beta_l)^\top
#   - s^0_{l+1} (s^0_l)^\top\right]$$
#
# (summed over the $B$ images of the batch), and the same for the biases with $s_{l+1}$.
# For binary weights the estimate is with respect to the effective weight $\alpha_l w_l$.
# Here it is by hand from the traced states, against `EP.estimate` (which runs both phases
# itself).

# %%
free_state, nudged_state = states[FREE_STEPS - 1], states[-1]
acts_free, acts_nudged = (x.flatten(1), *free_state), (x.flatten(1), *nudged_state)
by_hand = {}
for l in range(2):
    by_hand[f"couplings.{l}.weight"] = -(acts_nudged[l + 1].T @ acts_nudged[l]
                                         - acts_free[l + 1].T @ acts_free[l]) / (BETA * len(x))
    by_hand[f"couplings.{l}.bias"] = -(acts_nudged[l + 1] - acts_free[l + 1]).sum(0) / (BETA * len(x))
ep = EP(free_steps=FREE_STEPS, nudged_steps=NUDGED_STEPS, beta=BETA)  # fixed sign of β here
result = ep.estimate(net, x, y)
for name, gradient in result.gradients.items():
    difference = float((gradient - by_hand[name]).abs().max())
    print(f"{name:20s} {tuple(gradient.shape)!s:10s} largest |by hand - EP.estimate| = {difference:.2e}"
          f"  (largest |g| {float(gradient.abs().max()):.2e})")

# %% [markdown]
# How good is the estimate? Back-propagation through time on the same free dynamics
# (`BPTT`) computes the true gradient of the cost after $T$ steps. EP with small,
# *symmetric* nudges ($\pm\beta$, Laborieux et al. 2021) approaches it (the GDU property of
# Ernoult et al. 2019). The cosine similarity between the two, per tensor, on this batch:

# %%
exact = BPTT(free_steps=FREE_STEPS).gradients(net, x, y)
centred = EP(free_steps=FREE_STEPS, nudged_steps=NUDGED_STEPS, beta=0.05, symmetric=True).gradients(net, x, y)
for name in exact:
    cosine = torch.nn.functional.cosine_similarity(exact[name].flatten(), centred[name].flatten(), dim=0)
    print(f"{name:20s} cos(EP symmetric β=0.05, BPTT) = {float(cosine):+.3f}")

# %% [markdown]
# ## 4. Flip: the Bop optimizer
#
# Binary weights have no small steps: a sign either stays or flips. **Bop** (Helwegen et
# al. 2019; the EP variant of Laydevant et al. 2021) keeps one exponential moving average
# $m$ of the gradient estimate per synapse and flips a sign when the average agrees with it
# by more than a threshold $\tau$ (the update $-m$ then pushes against the sign):
#
# $$m \leftarrow (1-\gamma)\, m + \gamma\, \hat g, \qquad
#   w \leftarrow -w \quad \text{where } m \cdot w > \tau .$$
#
# There are no latent float weights; $\gamma$ sets how long the average remembers and
# $\tau$ how sure it must be. The biases stay float and take plain SGD steps. One training
# step is then *estimate* (both phases) → put the estimates in `.grad` → `bop.step()` and
# `sgd.step()`. `random_sign=True` draws the sign of β per batch, which cancels the
# estimate's first-order bias on average.

# %%
torch.manual_seed(0)
ep = EP(free_steps=FREE_STEPS, nudged_steps=NUDGED_STEPS, beta=BETA, random_sign=True)
bop = Bop([{"params": [c.weight]} for c in net.couplings], gamma=1e-3, threshold=1e-5)  # one group per layer
sgd = torch.optim.SGD([c.bias for c in net.couplings], lr=0.05)


def test_accuracy():
    xt = data.x_test
    state = relax(net, xt, net.initial_state(len(xt)), FREE_STEPS, context=prepare(net, xt))
    return float((net.predict(state) == data.y_test).float().mean())


history = {"epoch": [0], "test_accuracy": [test_accuracy()], "flips": [[0, 0]]}
print(f"epoch 0: test accuracy {history['test_accuracy'][0]:.3f} (chance 0.1)")
EPOCHS = 5
for epoch in range(1, EPOCHS + 1):
    tick = time.perf_counter()
    for batch in torch.randperm(len(data.y_train)).split(16):
        result = ep.estimate(net, data.x_train[batch], data.y_train[batch])
        for name, gradient in result.gradients.items():  # local estimates, no autograd
            net.get_parameter(name).grad = gradient
        bop.step()
        sgd.step()
    flips = bop.flip_counts()  # per layer since the last call
    history["epoch"].append(epoch)
    history["test_accuracy"].append(test_accuracy())
    history["flips"].append(flips)
    sizes = [c.weight.numel() for c in net.couplings]
    print(f"epoch {epoch}: test accuracy {history['test_accuracy'][-1]:.3f}, flips per layer {flips} "
          f"({', '.join(f'{100 * f / n:.2f} %' for f, n in zip(flips, sizes, strict=True))} of the signs), "
          f"{time.perf_counter() - tick:.1f} s")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.plot(history["epoch"], history["test_accuracy"], "o-")
left.axhline(0.1, color="grey", ls=":", label="chance")
left.set(xlabel="epoch", ylabel="test accuracy", title="binary-weight EP on the digits", ylim=(0, 1))
left.legend()
for layer in range(2):
    right.plot(history["epoch"][1:], [f[layer] for f in history["flips"][1:]], "o-",
               label=f"coupling {layer} ({net.couplings[layer].weight.numel()} signs)")
right.set(xlabel="epoch", ylabel="sign flips in the epoch", title="Bop flips per layer", yscale="log")
right.legend()
show(fig, "training.png")

# %% [markdown]
# **What the figure shows.** Left: test accuracy after each epoch (epoch 0 is the random
# initialisation). Right: how many signs Bop flipped in each epoch, per coupling, on a log
# scale — the main health signal of binary training: no flips means nothing learns, a
# flood of flips means the threshold is too low for the estimates' size.
#
# ## 5. The trained network relaxing
#
# The same trace as in section 2, now on the trained network and with both schedules:
# synchronous (all layers at once, as trained) and even/odd (layer 1, then layer 2, each
# from its neighbours' latest values).

# %%
x, y = data.x_test[:64], data.y_test[:64]
for schedule in ("synchronous", "even_odd"):
    energies, costs, states = trace(x, y, schedule=schedule)
    total = energies.clone()
    total[FREE_STEPS:] += BETA * costs[FREE_STEPS:]
    rises = int((energies[1:FREE_STEPS].mean(1) > energies[: FREE_STEPS - 1].mean(1) + 1e-6).sum())
    change = [float((a - b).abs().max()) for a, b in zip(states[FREE_STEPS - 1], states[FREE_STEPS - 2],
                                                           strict=True)]
    print(f"{schedule:12s}: mean E {float(energies[FREE_STEPS - 1].mean()):.3f} at step {FREE_STEPS}; "
          f"mean energy rose at {rises} of {FREE_STEPS - 1} free steps; "
          f"largest state change at the last free step {max(change):.1e}")
    plot_relaxation(energies, total, states, f"trained network, schedule {schedule!r}",
                    f"relaxation-trained-{schedule}.png")

# %% [markdown]
# **What the figures show.** The same three panels as in section 2, for a batch of test
# images. The printed lines say, for each schedule, the energy reached, at how many free
# steps the batch's mean energy went up instead of down, and how far the states still moved
# at the last free step (how close to a fixed point $T = 30$ steps get). The even/odd
# schedule, where each layer takes its exact minimising step given neighbours that are
# fixed during the half-sweep, cannot raise the energy of hard-sigmoid networks with dense
# couplings.
#
# ## Where next
#
# * The same training from the command line, with checkpoints and metrics:
#   `binlearn train configs/laydevant2021/fc-binary-weights.toml` (MNIST).
# * Binary *activations* as well (`BinaryAccumulator` neurons) and convolutional EP:
#   `binlearn.energy.convolutional`, `docs/conv-ep.md`.
# * Tutorial 2 trains without any gradient estimate at all (Colombo et al.'s local rule).

# %%
print(f"tutorial 01 done in {time.perf_counter() - started:.1f} s; figures in {OUT}")
