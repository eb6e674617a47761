"""Token mixers: one small component per attention kind (workbench.options.attention), each
turning queries and keys into the token-mixing pattern that `hook_pattern` holds. A mixer
installs its own parameters and hook points on the attention module it serves, under the
canonical names (`blocks.{l}.attn.W_F`, `...attn.hook_forget_gate`), and keeps no state."""
