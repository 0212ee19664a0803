"""Running models: plan what is pending, execute it, write results to the store."""
