"""RASP: the language, its interpreter and a compiler to hooked workbench models.
Filled in by the RASP issue; it emits ordinary workbench configs and weights."""
