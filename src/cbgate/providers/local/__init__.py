"""The embedded llama.cpp engine: model files, chat templates, the generation thread."""
