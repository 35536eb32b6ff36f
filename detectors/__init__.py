"""Detector plug-ins: they see only what a sensor on the virtual network sees, never ground truth.

See ``detectors.base`` for the contract and ``detectors.registry`` for the built-ins.
"""
