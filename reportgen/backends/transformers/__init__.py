"""The transformers backend: loading, fast decoding, scoring, GGUF conversion."""
