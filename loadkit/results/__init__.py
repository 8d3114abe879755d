"""Run results: the request record, its CSV writer and its vectorised reader."""
