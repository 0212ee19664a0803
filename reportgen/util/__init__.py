"""Small shared helpers with no reportgen dependencies: hashing, atomic writes, system facts."""
