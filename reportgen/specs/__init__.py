"""Model specs: extraction from config.json / adapter_config.json / GGUF, exact counting, the field table."""
