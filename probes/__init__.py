"""Probes: influential neuron paths, position/context decomposition, input inversion and
linear probes. Built on the hooked core (`workbench`); filled in by the probes issue."""
