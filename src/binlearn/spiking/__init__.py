"""Spiking networks: binary EP networks read as event-driven spiking networks (:mod:`binlearn.spiking.ep`)."""

from binlearn.spiking.ep import (
    EPSpikeRecord,
    SpikingEPError,
    check_spiking,
    event_currents,
    fan_outs,
    simulate_ep,
)

__all__ = ["EPSpikeRecord", "SpikingEPError", "check_spiking", "event_currents", "fan_outs", "simulate_ep"]
