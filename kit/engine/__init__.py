"""Engines that turn chat messages into tokens: the protocol (base), the in-process continuous-batching
engine over llama.cpp (llama) and a client of any OpenAI-compatible server (remote).

May import kit.config and kit.errors only. llama_cpp is imported inside the llama engine.
"""
