"""Scoring models: accuracy and per-class metrics, comparisons, calibration (temperature, ECE)."""
