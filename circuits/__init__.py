"""Circuits: batched activation/path/edge patching and circuit discovery (ACDC, EAP, EAP-IG),
scored against ground truth. Built on the hooked core (`workbench`); filled in by later issues."""
