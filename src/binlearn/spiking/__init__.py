"""Binary spiking networks: integrate-and-fire primitives, the converted-network
representation, encodings, conversion of feed-forward nets (:func:`convert`, Lu & Sengupta
2020; :func:`convert_sign_mlp` for the local rule's ±1 sign layers), the simulator
(:func:`simulate`, dense or event-driven), binary EP networks read as event-driven spiking
networks (:func:`simulate_ep`) and NIR export (:func:`to_nir`, :func:`write_nir`; the
``nir`` extra).

Spike condition everywhere: a neuron fires when its membrane is strictly above threshold,
v > θ (binlearn's Heaviside(0) = 0; NIR's IF). See :mod:`binlearn.spiking.functional`.
"""

from binlearn.spiking.convert import ConversionError, convert
from binlearn.spiking.encode import ENCODINGS, Direct, Poisson, encoding_from_name
from binlearn.spiking.ep import (
    EPSpikeRecord,
    SpikingEPError,
    check_spiking,
    event_currents,
    fan_outs,
    simulate_ep,
)
from binlearn.spiking.functional import (
    INITS,
    RESETS,
    IFParameters,
    if_step,
    initial_membrane,
    integrate_step,
    spike,
)
from binlearn.spiking.local import convert_sign_mlp
from binlearn.spiking.network import SpikingLayer, SpikingNetwork
from binlearn.spiking.neurons import IF, Integrator
from binlearn.spiking.nir import NIRExportError, read_nir, to_nir, write_nir
from binlearn.spiking.simulate import BACKENDS, SimulationResult, simulate

__all__ = [
    "RESETS", "INITS", "IFParameters", "if_step", "integrate_step", "initial_membrane",
    "spike", "IF", "Integrator", "SpikingLayer", "SpikingNetwork", "Direct", "Poisson",
    "ENCODINGS", "encoding_from_name", "SimulationResult", "simulate", "BACKENDS",
    "convert", "ConversionError", "convert_sign_mlp", "to_nir", "write_nir", "read_nir", "NIRExportError",
    "EPSpikeRecord", "SpikingEPError", "check_spiking", "event_currents", "fan_outs", "simulate_ep",
]
