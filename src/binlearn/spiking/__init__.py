"""Binary spiking networks: integrate-and-fire primitives, the converted-network
representation, encodings and the time-stepped simulator (Lu & Sengupta 2020; conversion in
:mod:`binlearn.spiking.convert`), and binary EP networks read as event-driven spiking
networks (:mod:`binlearn.spiking.ep`).

Spike condition everywhere: a neuron fires when its membrane is strictly above threshold,
v > θ (binlearn's Heaviside(0) = 0; NIR's IF). See :mod:`binlearn.spiking.functional`.
"""

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
    IFState,
    if_step,
    initial_membrane,
    integrate_step,
    spike,
)
from binlearn.spiking.network import SpikingLayer, SpikingNetwork
from binlearn.spiking.neurons import IF, Integrator
from binlearn.spiking.simulate import SimulationResult, simulate

__all__ = [
    "RESETS", "INITS", "IFParameters", "IFState", "if_step", "integrate_step", "initial_membrane",
    "spike", "IF", "Integrator", "SpikingLayer", "SpikingNetwork", "Direct", "Poisson",
    "ENCODINGS", "encoding_from_name", "SimulationResult", "simulate",
    "EPSpikeRecord", "SpikingEPError", "check_spiking", "event_currents", "fan_outs", "simulate_ep",
]
