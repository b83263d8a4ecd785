"""Datasets in every format, FER+ votes, uploads under budgets, data roots, statistics, label audit."""
