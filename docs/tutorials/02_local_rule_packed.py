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
# # The local binary rule, packed export and `binlearn infer`
#
# Colombo, Pittorino & Roveri (2024) train multi-layer binary networks with no gradient at
# all: ±1 weights and activations, **integer hidden weights**, and an error signal that
# each layer computes locally from a fixed random binary classifier. Everything in an update
# is XNOR, popcount, integer comparison and increment. This tutorial
#
# 1. runs the rule by hand in Python for a few epochs on the embedded 8×8 digits,
# 2. trains the quickstart with `binlearn train`, exports it as packed bits with
#    `binlearn export` and runs the export with `binlearn infer`,
# 3. measures the size and the speed of the packed model against the same layers in float32.
#
# Run it as a script (`python docs/tutorials/02_local_rule_packed.py` from the repository
# root) or as a notebook; figures are shown inline and saved under `BINLEARN_TUTORIAL_OUT`
# (a new temporary folder when unset), as is the run directory. About a minute on two cores.
#
# ## The rule
#
# Hidden layer $l$ has integer hidden weights $H$ (out × in) and ±1 weights $\operatorname{sign}(H)$
# (with $\operatorname{sign}(0) = +1$). For a ±1 input $x$ of $n$ features
#
# $$a = \operatorname{sign}(H)\, x = n - 2\,\operatorname{popcount}(x \oplus w), \qquad
#   s = \operatorname{sign}(a), \qquad \text{score} = P s ,$$
#
# where $P$ (classes × out, ±1) is the layer's own frozen random classifier. A sample is a
# *mistake* for the layer when its class does not win by the margin $\lfloor r \cdot
# \text{width} \rfloor$ ($r$ = `robustness`). For a mistake, the desired activation of unit
# $j$ is $d_j = P_{y j}$, and in each group of $G$ units the unit in error ($d_j a_j < 0$)
# that is closest to flipping (least $|a_j|$) is moved towards it:
#
# $$\Delta H_{j^\ast} \mathrel{+}= 2\, d_{j^\ast}\, x .$$
#
# A *reinforcement* step pushes every hidden weight away from zero with a small
# probability $p_r = p_0 \sqrt{1 - \text{train accuracy}}\,\sqrt{2/(\pi n)}$, which never
# changes a sign but makes the signs harder to flip (Baldassi et al. 2007). Each layer
# feeds its signs $s$ to the next; the last layer's scores are the prediction.

# %%
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numba
import numpy as np
import torch

from binlearn import PackedModel
from binlearn.data import load_dataset, raw_split
from binlearn.rules import LocalBinary, LocalBinaryParameters
from binlearn.rules.local_binary import init_layers, input_signs

started = time.perf_counter()
# One thread for torch and for numba: these tensors are small, and a second thread mostly
# waits for the first (on a busy machine, 10-100x slower); it also keeps the speed
# comparison below one core against one core.
torch.set_num_threads(1)
numba.set_num_threads(1)
OUT = Path(os.environ.get("BINLEARN_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="binlearn-tutorial-02-"))
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


def binlearn_cli(*args):
    """Run `binlearn ARGS` (the installed command's module, with this Python) and return its stdout."""
    done = subprocess.run([sys.executable, "-m", "binlearn", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"binlearn {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# %% [markdown]
# ## 1. The rule by hand
#
# The rule needs binary inputs. The quickstart encodes each pixel with a 3-bit
# *thermometer* (bit $k$ is on when the pixel passes the $k$-th of three evenly spaced
# levels), so an 8×8 image becomes 192 bits, read as ±1. The network is 192-1035-1035 with
# groups of $G = 115$ units (9 per layer), margin $r = 0.25$ and $p_0 = 0.5$, the
# quickstart's settings.

# %%
torch.manual_seed(0)
data = load_dataset("digits", encoding="thermometer", thermometer_bits=3)
x_train, x_test = input_signs(data.x_train), input_signs(data.x_test)  # (n, 192) int8 in {-1, +1}
y_train, y_test = data.y_train, data.y_test
print("input signs:", tuple(x_train.shape), x_train.dtype, "values", sorted(x_train.unique().tolist()))

layers = init_layers([x_train.shape[1], 1035, 1035], data.num_classes)  # H ~ round(N(0, 64²)), int16
rule = LocalBinary(LocalBinaryParameters(group_size=115, robustness=0.25, reinforcement=0.5))
print("hidden weights:", [(tuple(layer.hidden.shape), str(layer.hidden.dtype)) for layer in layers])
print("classifiers:   ", [(tuple(layer.classifier.shape), str(layer.classifier.dtype)) for layer in layers])

# %% [markdown]
# One epoch: set $p_r$ from the last epoch's training accuracy (`start_epoch`), then one
# `step` per mini-batch of 20, each with its own seed for the reinforcement's random bits
# (drawn from torch's generator, so the run is reproducible). `step` updates the integer
# weights in place and returns the batch's mistakes and correct predictions.

# %%
history = {"epoch": [], "train": [], "test": [], "sign_changes": [], "mean_abs_h": []}
train_accuracy = 0.0
EPOCHS = 5
for epoch in range(1, EPOCHS + 1):
    tick = time.perf_counter()
    rule.start_epoch(layers, train_accuracy)
    signs_before = [layer.hidden >= 0 for layer in layers]
    correct = 0
    for batch in torch.randperm(len(y_train)).split(20):
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        result = rule.step(layers, x_train[batch], y_train[batch], seed=seed)
        correct += result.correct
    train_accuracy = correct / len(y_train)
    test_accuracy = float((rule.predict(layers, x_test) == y_test).float().mean())
    changes = [float(((layer.hidden >= 0) != before).float().mean()) for layer, before
               in zip(layers, signs_before, strict=True)]
    history["epoch"].append(epoch)
    history["train"].append(train_accuracy)
    history["test"].append(test_accuracy)
    history["sign_changes"].append(changes)
    history["mean_abs_h"].append([float(layer.hidden.abs().float().mean()) for layer in layers])
    print(f"epoch {epoch}: train {train_accuracy:.3f} (during the epoch), test {test_accuracy:.3f}, "
          f"signs changed per layer {', '.join(f'{100 * c:.2f} %' for c in changes)}, "
          f"{time.perf_counter() - tick:.1f} s")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), layout="constrained")
axes[0].plot(history["epoch"], history["train"], "o-", label="train (during the epoch)")
axes[0].plot(history["epoch"], history["test"], "s-", label="test")
axes[0].set(xlabel="epoch", ylabel="accuracy", title="the rule by hand, 192-1035-1035", ylim=(0, 1))
axes[0].legend()
for index in range(len(layers)):
    axes[1].plot(history["epoch"], [100 * c[index] for c in history["sign_changes"]], "o-",
                 label=f"layer {index + 1}")
axes[1].set(xlabel="epoch", ylabel="% of signs changed", title="sign changes per epoch", ylim=(0, None))
axes[1].legend()
for index, layer in enumerate(layers):
    axes[2].hist(layer.hidden.flatten().numpy(), bins=101, histtype="step", label=f"layer {index + 1}")
axes[2].axvline(0, color="grey", ls=":")
axes[2].set(xlabel="hidden weight H (integer)", ylabel="synapses",
            title=f"hidden weights after {EPOCHS} epochs")
axes[2].legend()
show(fig, "local-rule-by-hand.png")

# %% [markdown]
# **What the figure shows.** Left: training accuracy (counted while the epoch trains) and
# test accuracy per epoch. Middle: the share of ±1 weights whose sign changed in each
# epoch, per layer — the integer weights move every batch, but only the
# crossings of zero change what the network computes. Right: the integer hidden weights at
# the end; the dotted line is the sign boundary. Only the sign of each hidden weight is
# used at inference, so the trained network is 1 bit per synapse.
#
# ## 2. `binlearn train`, `export`, `infer`
#
# The same rule, with checkpoints, metrics and 20 epochs, is the quickstart: `binlearn train`
# with no config file. `binlearn export` writes the network as packed bits: every weight
# row as 64-bit words, the thermometer encoding as integer pixel thresholds, each hidden
# unit's sign step as an integer threshold, and the classifier (the format is
# `docs/packed-format.md`). Export checks that the packed model predicts exactly what the
# trained one does on the whole test set and refuses to write it otherwise.
# `binlearn infer` then runs the file with the XNOR-popcount kernels only, on the raw test
# images.

# %%
RUN = OUT / "quickstart"
trained = json.loads(binlearn_cli("train", "--run-dir", str(RUN), "--quiet"))
print({key: trained[key] for key in ("dataset", "epochs", "test_accuracy", "train_seconds")})
exported = json.loads(binlearn_cli("export", str(RUN), "--quiet"))
print(json.dumps({key: exported[key] for key in ("output", "bytes", "float32_bytes", "smaller_than_float32",
                                                  "verified")}, indent=1))
inferred = json.loads(binlearn_cli("infer", exported["output"]))
print(inferred)
print("infer's accuracy is the trained model's:", inferred["accuracy"] == trained["test_accuracy"])

# %% [markdown]
# `verified` counts the test images on which the packed model and the trained network
# agree; `smaller_than_float32` compares the file with the same dense layers stored as
# float32 weights and biases.
#
# ## 3. Size and speed against float
#
# Size first: the export's layers, in bytes, against float32 (4 bytes a weight, plus a
# bias per unit).

# %%
for layer in exported["layers"]:
    floats = 4 * (layer["in"] * layer["out"] + layer["out"])
    print(f"{layer['layer']:11s} {layer['in']:5d} -> {layer['out']:5d}: packed {layer['bytes']:7d} B, "
          f"float32 {floats:8d} B ({floats / layer['bytes']:.1f}x)")
print(f"file on disk: {Path(exported['output']).stat().st_size} bytes")

# %% [markdown]
# Speed: the packed model (`binlearn.PackedModel`, what `infer` runs) against the same
# network in float32 torch: ±1 activations and ±1 weights as float32 matrices,
# `sign(x Wᵀ)` layer by layer, then the classifier's scores. Both get the same test images
# (the 360 repeated to 2,048), both predict the same classes (checked below), and each is
# timed as the best of three runs after a warm-up, on one thread each, on this machine as
# it is now.

# %%
packed = PackedModel.load(exported["output"])
images, labels = raw_split("digits", "test")  # uint8 images as stored, what `infer` reads
IMAGES = 2048
repeat = -(-IMAGES // len(images))
images_big = np.concatenate([images] * repeat)[:IMAGES]
signs_big = torch.cat([x_test] * repeat)[:IMAGES].float()  # the same images, encoded as in training

def trained_layers():
    """The quickstart run's integer weights and classifiers, read back through the public loader."""
    from binlearn.artifacts import load_trained

    model = load_trained(RUN, device="cpu", quiet=True).model
    return ([torch.where(layer.hidden >= 0, 1.0, -1.0) for layer in model],
            model[-1].classifier.float())


weights, classifier = trained_layers()


def float_predict(x):
    for weight in weights:
        x = torch.where(x @ weight.T >= 0, 1.0, -1.0)  # sign(0) = +1
    return (x @ classifier.T).argmax(dim=1)


def best_of(function, repeats=3):
    function()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        function()
        times.append(time.perf_counter() - tick)
    return min(times)


words = packed.encode(images_big)  # the pixel thresholds, once: inference proper starts from bits
with torch.no_grad():
    same = bool((torch.from_numpy(packed.predict_words(words)) == float_predict(signs_big)).all())
    float_seconds = best_of(lambda: float_predict(signs_big))
packed_seconds = best_of(lambda: packed.predict_words(words))
speed = {"packed": len(words) / packed_seconds, "float32": len(signs_big) / float_seconds}
print(f"same predictions on {len(words)} images: {same}")
print(f"threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}")
print(f"packed  {1e3 * packed_seconds:7.2f} ms  ({speed['packed']:,.0f} images/s)")
print(f"float32 {1e3 * float_seconds:7.2f} ms  ({speed['float32']:,.0f} images/s)")
print(f"packed / float32 speed: {speed['packed'] / speed['float32']:.2f}x")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
left.bar(["packed (1 bit)", "float32"], [exported["bytes"] / 1024, exported["float32_bytes"] / 1024],
         color=["tab:green", "tab:grey"])
left.set(ylabel="KiB", title=f"model size ({exported['smaller_than_float32']:.0f}x smaller packed)")
right.bar(["packed XNOR-popcount", "float32 torch"], [speed["packed"], speed["float32"]],
          color=["tab:green", "tab:grey"])
right.set(ylabel="images / s", title=f"inference, {len(words)} images (test set repeated), best of 3")
show(fig, "size-speed.png")

# %% [markdown]
# **What the figure shows.** Left: the exported file against the same layers in float32.
# Right: images per second of the packed kernels and of float32 torch on this machine, for
# this run (the printed lines above give the times and thread counts). The size ratio is a
# property of the format (1 bit a weight against 32, plus the integer thresholds); the speed
# ratio depends on the CPU, the threads, the batch and the layer shapes, and on how busy the
# machine is while it runs, so it changes from run to run. `benchmarks/xnor_speed.py`
# measures a single packed layer against `torch.matmul` at larger shapes, with repeats.
#
# ## Where next
#
# * `binlearn reproduce colombo2024/mnist-1035-1035 --quick` runs the paper's MNIST
#   network on 8,000 images (tutorial 4).
# * `binlearn convert RUN --one-step` runs the same network as an integrate-and-fire
#   spiking network, exactly the binary network at T = 1 (tutorial 3).

# %%
print(f"tutorial 02 done in {time.perf_counter() - started:.1f} s; figures and the run in {OUT}")
