"""Suite-wide pytest plugins: the shared anvil devnet fixtures (lazy: started only if used)."""

pytest_plugins = ["comptoir.testing.fixtures"]
