"""Ferry's workflows, one per module."""
