"""Provider APIs: how each service is addressed and how its answers are read, one entry per API."""
