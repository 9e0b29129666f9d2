# pragma version ~=0.4.3
"""
@title Comptoir payment token (CPT)
@custom:contract-name ComptoirToken
@license AGPL-3.0-only
@notice ERC-20 with EIP-2612 `permit`, built from snekmate's audited module.
        The deployer is owner and minter; on a devnet it mints test funds.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: erc20.__interface__


@deploy
def __init__():
    """
    @notice Deploys the token with 18 decimals and the EIP-712 domain "ComptoirToken" v1.
    """
    ownable.__init__()
    erc20.__init__("Comptoir Token", "CPT", 18, "ComptoirToken", "1")
