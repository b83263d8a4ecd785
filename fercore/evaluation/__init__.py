"""Scoring models: accuracy and per-class metrics, comparisons, calibration (ECE, fitting a temperature)."""
