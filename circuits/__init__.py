"""Circuits: batched activation/path/edge patching and circuit discovery, scored against
ground truth. Built on the hooked core (`workbench`).

Patching: `nodes` (sites at layers, positions, heads, neurons), `edges` (edge sets of the
`graph`), on the batched runner `engine`. Discovery takes a `problem.Problem` and returns a
`circuit.Circuit`: `acdc` (edge and node level, resumable), `eap` (EAP, EAP-IG),
`baselines`; `evaluation` scores circuits; `jobs` runs discovery as resumable jobs."""
