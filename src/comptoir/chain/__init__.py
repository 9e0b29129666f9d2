"""Chain layer: contract build, deployment, EIP-712 orders and typed wrappers over the contracts."""
