"""Comptoir: a decentralized cloud."""
