"""The model pipeline: the catalogue (models.yaml), the lock of installed models and their
verification, hub downloads, conversion and quantization with llama.cpp, air-gap import and export,
and loading the configured engine (runtime).

May import kit.engine, kit.config, kit.errors, kit.files; never kit.gateway, kit.cli or ui.
Conversion and quantization import llama.cpp's tools inside the functions that need them.
"""
