"""The client protocols, pure and without I/O: each surface's contract (surface.py), its requests parsed
once into typed objects, and its answers, streams and error envelopes."""
