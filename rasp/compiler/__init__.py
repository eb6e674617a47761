"""The RASP compiler, a row of stages (as in tracr): `graph` (program -> graph of
expressions), `values` (the value set of every SOp), `layers` (which sublayer computes each
operation), `residual` (one labelled dimension per categorical value or numerical SOp),
`blocks` (heads and MLPs as numpy matrices over the residual: the executable intermediate
form), `assemble` (a workbench model), `validate` (the model against the interpreter),
`ground_truth` (the circuit) and `labels` (what each residual dimension and head means, for
the checkpoint). `compiler.compile_rasp` calls them in that order; `save` writes the labels."""
