"""The bundled mock provider: an OpenAI-compatible service modelled as a loaded inference engine."""
