"""Statistics over measured results: metrics, bootstrap and tests, frames, efficiency, history."""
