"""The chaos layer: fault model, aiohttp reverse proxy, control API, fault timeline driver."""
