"""An example external detector plug-in for the adaptive-worm testbed (docs/plugins.md)."""
