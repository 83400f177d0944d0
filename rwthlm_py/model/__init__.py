"""The network as a whole: its network string, the layers it builds and runs, and the
self-describing model file with its metadata checks."""
