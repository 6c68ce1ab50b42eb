"""Backends: where the lab's objects become running things (local Envoy, or a real cluster)."""
