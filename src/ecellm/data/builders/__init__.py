"""Task builders: raw public sources -> ECInstruct samples (see ``base.py`` for the contract)."""
