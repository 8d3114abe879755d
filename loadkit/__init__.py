"""loadkit: load and resilience testing for generative-AI services."""

__version__ = "0.1.0"
