"""Detector plug-ins: they see only what a sensor on the virtual network sees, never ground truth.

The public plug-in API is ``detectors.base``::

    from detectors.base import Alert, ConnEvent, Detector, SensorContext, check_detector

``detectors.registry`` names the built-ins (and takes third-party registrations). Everything else
in this package is a plug-in; running them (detector sets, the alert log, offline detection) is
the engine's job, in ``testbed.detection``. Plug-ins import only ``detectors.base`` and neutral
modules (``testbed.errors``, ``testbed.wire``, ``testbed.taps``, ``testbed.records``): an import
contract in pyproject.toml enforces it.
"""
