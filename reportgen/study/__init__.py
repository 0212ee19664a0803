"""The study: its config (typed, with file:line errors), YAML loading, prompt sets, init, claims."""
