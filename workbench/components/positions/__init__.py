"""Positions that attention applies, one small component per scheme of
workbench.options.positions: rotations of queries and keys (rotary, xPos), biases on the
scores (ALiBi, T5 buckets, FIRE) and Shaw's relative keys and values. Like the mixers, each
installs its parameters and hook points on the attention module under the canonical names.
The embedded schemes (learned, sinusoidal, Abacus), PEG and none apply nothing here
(`Positions`)."""
