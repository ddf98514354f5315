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
# # From a trained binary network to a spiking network and NIR
#
# A network with binary weights and ReLU activations can run as an **integrate-and-fire**
# (IF) spiking network (Lu & Sengupta 2020): each ReLU unit becomes a neuron that
# integrates its input current and emits a spike when its membrane passes a threshold, and
# its firing rate over $T$ time steps approximates the ReLU's output. This tutorial
#
# 1. trains a small binary-weight MLP on the embedded 8×8 digits with straight-through
#    back-propagation (a few seconds),
# 2. converts it to a spiking network and simulates it, plotting the **latency curve**
#    (accuracy after each time step) for three simulation modes,
# 3. counts **synaptic operations** (one per spike arriving at a synapse) against the
#    multiply-accumulates of the source network,
# 4. writes the network as a [NIR](https://neuroir.org) graph, reads the file back, and
#    runs the graph read back with a dozen lines of numpy, checking it against binlearn's
#    simulator.
#
# Run it as a script (`python docs/tutorials/03_spiking_nir.py` from the repository root)
# or as a notebook; figures are shown inline and saved under `BINLEARN_TUTORIAL_OUT` (a new
# temporary folder when unset), with the NIR file. It needs the `nir` package
# (`pip install 'binlearn[nir]'`) for section 4. Well under a minute on two cores.

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from binlearn.binary import BinarySign
from binlearn.data import load_dataset
from binlearn.nn import mlp
from binlearn.spiking import convert, read_nir, simulate, to_nir, write_nir
from binlearn.spiking.nir import describe, graph_differences
from binlearn.spiking.synops import spiking_summary, totals

started = time.perf_counter()
# One thread: these tensors are small, and a second thread mostly waits for the first (on a
# busy machine, where it is often descheduled, the waits made this page 10-100x slower).
torch.set_num_threads(1)
OUT = Path(os.environ.get("BINLEARN_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="binlearn-tutorial-03-"))
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


# %% [markdown]
# ## 1. A binary-weight source network
#
# `binlearn.nn.mlp` builds Flatten → [Linear → BatchNorm → ReLU] per hidden layer →
# Linear → BatchNorm. With `weight_quantizer=BinarySign` every layer computes with
# $\alpha \cdot \operatorname{sign}(w)$ ($\alpha$ the mean $|w|$ of the layer), and the
# straight-through estimator trains the latent float weights $w$, kept in $[-1, 1]$.

# %%
torch.manual_seed(0)
data = load_dataset("digits")  # pixels in [0, 1]
model = mlp(64, [256, 256], data.num_classes, weight_quantizer=BinarySign)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
binary_layers = [m for m in model.modules() if getattr(m, "weight_quantizer", None) is not None]


def source_accuracy():
    model.eval()
    with torch.no_grad():
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())


for epoch in range(1, 11):
    model.train()
    for batch in torch.randperm(len(data.y_train)).split(64):
        loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for layer in binary_layers:
                layer.weight.clamp_(-1, 1)  # the latent weights stay where sign() is informative
    if epoch % 5 == 0:
        print(f"epoch {epoch}: test accuracy {source_accuracy():.4f}")
SOURCE = source_accuracy()
print(model)

# %% [markdown]
# ## 2. Conversion and the latency curve
#
# `convert` copies the source and replaces its modules. Each block computes
# $z = c\,(W x) + d$, where $c$ and $d$ fold $\alpha$ and the batch norm. For each ReLU
# layer, the activations of training images give a scale $\lambda$ (here their 99.7th
# percentile) that one spike stands for. A binary layer fed by spikes (here the second
# hidden layer) fires when its membrane passes $\theta = \lambda / (|c|\,\lambda_{\text{prev}})$
# while **its synapses stay ±1**: $\alpha$, the batch norm and the balancing scale all end
# up in one threshold per unit. The first layer reads the image as a constant current
# through float synapses (the weights scaled by $c/\lambda$, threshold 1), and the output
# layer is a non-spiking integrator, also with float synapses, whose argmax after $t$ steps
# is the prediction at step $t$ — first and last layers stay float, as in Lu & Sengupta.
#
# One IF step is $v \leftarrow v + I$, spike $z = [v > \theta]$, then the reset: by
# subtraction ($v \leftarrow v - \theta z$, keeping the residue) or to zero. Simulation
# modes change when a spike is seen: with the **layer delay** (default) a spike reaches
# the next layer one step later, so the output hears nothing for the first $L$ steps;
# **one-step** (`delay=False`) passes spikes through every layer in the same step; and
# membranes may start at $\theta/2$ instead of 0 (`init="half"`), which centres the
# rounding error of the rate code.

# %%
network = convert(model, data.x_train, percentile=99.7)  # reset by subtraction
print(network)
T = 32
modes = {"layer delay (default)": {"delay": True},
         "one-step": {"delay": False},
         "one-step, θ/2 init": {"delay": False, "init": "half"}}
curves, results = {}, {}
for label, options in modes.items():
    result = simulate(network, data.x_test, T, **options)
    results[label] = result
    curves[label] = (result.outputs.argmax(-1) == data.y_test).float().mean(1).numpy()  # (T,)
    within = np.flatnonzero(curves[label] >= SOURCE - 0.01)
    print(f"{label:22s} step 1: {curves[label][0]:.3f}, step {T}: {curves[label][-1]:.3f}; "
          f"within 1 point of the source from step {within[0] + 1 if len(within) else 'never'} "
          f"({result.backend} simulator)")

# %%
fig, axis = plt.subplots(figsize=(7, 4))
steps = np.arange(1, T + 1)
for label, curve in curves.items():
    axis.plot(steps, curve, label=label)
axis.axhline(SOURCE, color="black", ls="--", label=f"source network ({SOURCE:.3f})")
axis.axhline(SOURCE - 0.01, color="grey", ls=":", label="1 point below the source")
axis.set(xlabel="time step t", ylabel="test accuracy after t steps",
         title="latency curve, 64-256-256-10 digits", ylim=(0, 1.02))
axis.legend(fontsize=8)
show(fig, "latency.png")

# %% [markdown]
# **What the figure shows.** The test accuracy of the spiking network's prediction after
# each time step, for the three modes, with the source network's accuracy dashed and one
# point below it dotted. The printed lines give, for each mode, the first step from which
# the spiking network stays within one point of its source. With the layer delay, the
# first steps are at chance level because no spike has reached the output yet.
#
# ## 3. Synaptic operations
#
# A spiking network does work only when a spike arrives: spikes are 0 or 1, so each spike
# adds the weight of every synapse it reaches (its *fan-out*) to a membrane — one addition
# per synapse, of ±1 in a binary layer — against one multiply-accumulate per synapse per
# image for the source network. `spiking_summary`
# counts them from the simulation's spikes, per layer and per image; the first layer, fed
# the image as a constant current, is one dense pass (its MACs, counted apart as
# `input_macs`).

# %%
rows = spiking_summary(network, results["one-step"])
for row in rows:
    print(f"{row['layer']:7s} units {row['units']:4d} ±1 synapses {str(row['binary']):5s} "
          f"source MACs {row['source_macs']:7d}  synaptic ops {row['synaptic_ops']:10.0f}  "
          f"firing rate {row['firing_rate'] if row['firing_rate'] is None else round(row['firing_rate'], 3)}")
print("totals per image over", T, "steps:", {k: round(v) for k, v in totals(rows).items()})

# %% [markdown]
# Synaptic operations grow with the number of steps, accuracy too: the trade-off is the
# question for a spiking deployment. Here the one-step network runs for
# $T = 1, 2, 4, \dots, 32$ steps, and each run's synaptic operations per image (after the
# first layer) are set against its accuracy and against the source network's MACs over the
# same layers.

# %%
budgets = [1, 2, 4, 8, 16, 32]
synops, accuracy = [], []
for steps_run in budgets:
    result = simulate(network, data.x_test, steps_run, delay=False)
    synops.append(totals(spiking_summary(network, result))["synaptic_ops"])
    accuracy.append(float((result.outputs[-1].argmax(-1) == data.y_test).float().mean()))
source_macs_after_first = sum(row["source_macs"] for row in rows[1:])
for steps_run, ops, acc in zip(budgets, synops, accuracy, strict=True):
    print(f"T = {steps_run:2d}: {ops:9.0f} synaptic ops per image ({ops / source_macs_after_first:.2f}x "
          f"the source's {source_macs_after_first} MACs), accuracy {acc:.3f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
left.plot(budgets, synops, "o-", label="spiking: synaptic ops (additions)")
left.axhline(source_macs_after_first, color="black", ls="--", label="source: MACs, same layers")
left.set(xscale="log", yscale="log", xlabel="time steps T", ylabel="operations per image",
         title="work per image after the first layer")
left.set_xticks(budgets, [str(b) for b in budgets])
left.legend(fontsize=8)
right.plot(synops, accuracy, "o-")
for steps_run, ops, acc in zip(budgets, synops, accuracy, strict=True):
    right.annotate(f"T={steps_run}", (ops, acc), textcoords="offset points", xytext=(4, -10), fontsize=8)
right.axhline(SOURCE, color="black", ls="--", label="source accuracy")
right.set(xscale="log", xlabel="synaptic ops per image", ylabel="test accuracy",
          title="accuracy against work", ylim=(0, 1.02))
right.legend(fontsize=8)
show(fig, "synops.png")

# %% [markdown]
# **What the figure shows.** Left: synaptic operations per image (spikes × fan-out, for
# the layers fed by spikes) against the number of time steps, on log axes, with the source
# network's multiply-accumulates over the same layers dashed; a synaptic operation is one
# addition, a MAC a multiplication and an addition. Right: accuracy against
# those operations, each point a simulation of $T$ steps. Where the spiking curve crosses
# the dashed line, the spiking network does as many operations as the source, and a
# comparison of energy must then weigh an addition against a MAC on the target hardware.
#
# ## 4. NIR: write, read back, run
#
# NIR's IF neuron resets to a value ($v_\text{reset}$), not by subtraction, and NIR's edges
# carry no delay, so a NIR reader reproduces binlearn's simulation exactly for the network
# converted with **reset to zero**, simulated **one-step** with membranes starting at 0
# (`docs/nir.md` lists what is exact). So we convert again with `reset="zero"` and write
# that network.

# %%
network_zero = convert(model, data.x_train, percentile=99.7, reset="zero")
graph = to_nir(network_zero)
path = write_nir(graph, OUT / "digits-mlp.nir")
print(f"wrote {path} ({path.stat().st_size} bytes)")
back = read_nir(path)
print("differences between the graph written and the graph read back:",
      graph_differences(graph, back) or "none")
for row in describe(back):
    print(f"  {row['name']:18s} {row['type']:8s} {row['arrays']}")
print("edges:", back.edges)

# %% [markdown]
# The file is an HDF5 file of nodes (`Input`, `Flatten`, `Affine` = weights and a constant
# current, `IF` with a threshold per unit, `I` the output integrator, `Output`) and edges.
# To show that it holds the whole network, here is a reader of these node types written
# from NIR's definitions alone (one time step is one unit of time: $v \leftarrow v + rI$),
# run on the graph read from the file, against binlearn's own simulator. For a reader
# built on nirtorch and snnTorch, see `binlearn.spiking.nir.reference_reader`.


# %%
def run_nir(graph, x, steps):
    """Run a feed-forward NIR graph of Input/Flatten/Affine/Linear/IF/I/Threshold/Output nodes
    with the input x as the current of every step; returns the output after each step."""
    following = dict(graph.edges)
    order, name = [], "input"
    while name in following:
        name = following[name]
        order.append(name)
    membranes = {}
    outputs = []
    for _ in range(steps):
        h = x.astype(np.float32)
        for name in order:
            node = graph.nodes[name]
            kind = type(node).__name__
            if kind == "Flatten":
                h = h.reshape(len(h), -1)
            elif kind == "Affine":
                h = h @ node.weight.T + node.bias
            elif kind == "Linear":
                h = h @ node.weight.T
            elif kind == "Threshold":
                h = (h > node.threshold).astype(np.float32)
            elif kind in ("IF", "I"):
                v = membranes.get(name, 0.0) + node.r * h  # dv/dt = r·I, dt = 1
                if kind == "IF":
                    spikes = v > node.v_threshold
                    v = np.where(spikes, node.v_reset, v)
                    h = spikes.astype(np.float32)
                else:
                    h = v
                membranes[name] = v
            elif kind != "Output":
                raise ValueError(f"this small reader does not know {kind} nodes")
        outputs.append(h)
    return np.stack(outputs)  # (steps, batch, classes)


STEPS = 16
by_reader = run_nir(back, data.x_test.numpy(), STEPS)
by_binlearn = simulate(network_zero, data.x_test, STEPS, delay=False).outputs.numpy()
same_class = by_reader.argmax(-1) == by_binlearn.argmax(-1)
print(f"same predicted class at every step for {int(same_class.all(0).sum())} of {len(data.y_test)} "
      f"test images ({int(same_class.sum())} of {same_class.size} image-steps)")
print(f"largest difference of the integrated outputs: {float(np.abs(by_reader - by_binlearn).max()):.2e}")
reader_curve = (by_reader.argmax(-1) == data.y_test.numpy()).mean(1)
print("reader's accuracy per step:", np.round(reader_curve, 3).tolist())

# %%
fig, axis = plt.subplots(figsize=(7, 4))
axis.plot(np.arange(1, STEPS + 1), (by_binlearn.argmax(-1) == data.y_test.numpy()).mean(1), "o-",
          label="binlearn simulate (reset to zero, one-step)")
axis.plot(np.arange(1, STEPS + 1), reader_curve, "x--", label="the NIR file, run by the numpy reader")
axis.axhline(SOURCE, color="black", ls=":", label="source network")
axis.set(xlabel="time step t", ylabel="test accuracy after t steps", title="the NIR graph read back",
         ylim=(0, 1.02))
axis.legend(fontsize=8)
show(fig, "nir-readback.png")

# %% [markdown]
# **What the figure shows.** The latency curve of the reset-to-zero network twice: from
# binlearn's simulator and from the graph read back from the NIR file by the reader above.
# The printed lines count the images whose predicted class is the same at every step and
# the largest difference between the two integrated outputs (floating-point sums in
# another order can differ in the last bits).
#
# ## Where next
#
# * From the command line: `binlearn convert RUN_DIR --timesteps 32 --one-step` writes
#   `spiking.json` and `latency.png` for a trained run, `binlearn export RUN_DIR --format nir`
#   the NIR graph.
# * Networks trained by the local binary rule (tutorial 2) convert exactly: ±1 synapses and
#   integer thresholds, the binary network itself at $T = 1$.
# * Binary EP networks run as event-driven spiking networks of their own relaxation
#   (`binlearn.spiking.simulate_ep`); NIR cannot express them, and `docs/nir.md` says why.

# %%
print(f"tutorial 03 done in {time.perf_counter() - started:.1f} s; figures and the NIR file in {OUT}")
