"""reportgen: comparative studies of language models, regenerated in one command."""

__version__ = "0.1.0"
