"""Base models: loading from local paths, the SmolLM2 GGUF conversion, tiny models for tests."""
