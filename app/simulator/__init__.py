"""A local simulator of the Amber API, the Tesla Fleet / Teslemetry energy API and Tesla's OAuth server,
in their real wire formats, for the demo, end-to-end tests and benchmarks. It imports nothing from the
app: it is an independent fake, so a misunderstanding shared with the app's clients cannot hide."""
from __future__ import annotations

from . import identity
from .server import create_simulator_app, fault_name, run_simulator, start_simulator_thread
from .state import DEFAULT_SEED, SimConfig

__all__ = [
    "DEFAULT_SEED",
    "SimConfig",
    "create_simulator_app",
    "fault_name",
    "identity",
    "run_simulator",
    "start_simulator_thread",
]
