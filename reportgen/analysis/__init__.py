"""The comparative analysis: text-free findings, and the one place they become sentences."""
