"""Orchestration: the run, capacity search, calibration and the start-up check, above every room."""
