"""The schema's history, one tortoise migration per module, applied in order of dependencies."""
