"""Adaptive-worm cyber-defence testbed: YAML topologies become emulated networks to rehearse on.

Kept import-light on purpose: ``testbed.agent`` runs inside hosts with nothing but python3, and
the engine's heavier parts (pydantic, networkx, scapy, docker) load only where they are used.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
