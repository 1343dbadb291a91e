"""Zoo architectures: each a module with a dataclass config and a builder function."""
