"""Analysis: numpy only, reads records and nothing else."""
