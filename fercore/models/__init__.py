"""Architectures, the shipped model tiers (ensembles), the model catalog and export formats."""
