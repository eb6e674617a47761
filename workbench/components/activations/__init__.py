"""What each MLP kind computes between the MLP's two linear maps (one file per family)."""
