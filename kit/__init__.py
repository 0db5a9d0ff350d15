"""kit: run a generative-AI assistant on your own machines, with the usage rules built in."""

__version__ = "0.1.0"
