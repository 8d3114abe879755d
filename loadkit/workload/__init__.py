"""What each request is: token-length distributions, arrivals, regions, prompts, sessions, traces.

Everything here is numpy, vectorised and seeded from a `numpy.random.Generator`, so the same
seed gives the same plan. Nothing here talks to the network.
"""
