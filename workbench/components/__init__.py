"""Building blocks of the hooked transformer, one module per kind of component."""
