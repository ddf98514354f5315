"""How closely the integer-only EP engine follows the float32 engine on the same weights.

For a binary EnergyNet (784-H-100 of ``configs/laydevant2021/
fc-binary-weights-activations-binary-input-integer.toml``, at its initialisation from
``--seed``, or the trained net of ``--run RUN_DIR``), runs the free phase (T steps) of the float
engine (:mod:`binlearn.energy.relax`) and of the integer engine
(:func:`binlearn.rules.integer_ep.integer_free_phase`) on real MNIST images (binarised at 0.5)
for every F of ``--fraction-bits``, and prints one JSON object: the fraction of images whose
prediction agrees, of units whose activation agrees (per layer), and both engines' accuracy.

    python benchmarks/integer_agreement.py [--hidden 8192] [--images 1000] [--run RUN_DIR]
                                           [--fraction-bits 8 12 16 20 24] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from binlearn.data import load_dataset
from binlearn.experiment import load_config
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.registry import build_learner
from binlearn.rules.integer_ep import integer_free_phase, integer_parameters, integer_scores, network_integers

CONFIG = (Path(__file__).resolve().parents[1] / "configs" / "laydevant2021"
          / "fc-binary-weights-activations-binary-input-integer.toml")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=8192)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--run", default=None, help="a run directory: its config and trained weights")
    parser.add_argument("--fraction-bits", type=int, nargs="*", default=[8, 12, 16, 20, 24])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data_dir or os.environ.get("BINLEARN_DATA")
    data = load_dataset("mnist", data_dir=root, quiet=True)
    x = (data.x_test[:args.images] > 0.5).float()
    y = data.y_test[:args.images]
    if args.run:
        config = load_config(Path(args.run) / "config.toml")
    else:
        config = load_config(CONFIG, [f"model.hidden=[{args.hidden}]"])
    torch.manual_seed(args.seed)
    learner = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
    if args.run:
        learner.load_state_dict(load_checkpoint(Path(args.run) / "checkpoint.pt")["learner"])
    net, ep = learner.model, learner.rule
    state, _ = ep.free_phase_until(net, x)
    float_predictions = net.predict(state)
    result: dict = {
        "benchmark": "integer_agreement", "config": str(args.run or CONFIG), "hidden": config.model.hidden,
        "weights": "trained" if args.run else f"initialisation, seed {args.seed}",
        "images": len(x), "inputs": "MNIST test images binarised at 0.5", "free_steps": ep.free_steps,
        "float_accuracy": round(float((float_predictions == y).float().mean()), 4),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()}, "torch": torch.__version__,
        "fraction_bits": {},
    }
    for bits in args.fraction_bits:
        params = integer_parameters(net, ep, bits)
        layers = integer_free_phase(params, network_integers(net, bits), x)
        predictions = integer_scores(params, layers[-1]).argmax(dim=1)
        result["fraction_bits"][str(bits)] = {
            "prediction_agreement": round(float((predictions == float_predictions).float().mean()), 4),
            "activation_agreement": [
                round(float((torch.gt(i, params.threshold) == (f > 0.5)).float().mean()), 6)
                for i, f in zip(layers, state.layers, strict=True)],
            "integer_accuracy": round(float((predictions == y).float().mean()), 4),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
