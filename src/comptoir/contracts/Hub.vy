# pragma version ~=0.4.3
"""
@title Comptoir hub: escrow, registry, orders and Proof-of-Contribution
@custom:contract-name Hub
@license AGPL-3.0-only
@notice The contract requesters, providers and schedulers pay through. It only wires
        the modules together; each module holds one concern (see ARCHITECTURE.md).
"""

from ethereum.ercs import IERC20
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator
from snekmate.utils import signature_checker
from interfaces import IRegistry
from modules import escrow
from modules import registry_client
from modules import orders
from modules import poco

initializes: ecdsa
initializes: signature_checker
initializes: eip712_domain_separator
initializes: escrow
initializes: registry_client
initializes: orders[eip712_domain_separator := eip712_domain_separator, registry_client := registry_client]
initializes: poco[escrow := escrow, registry_client := registry_client, orders := orders, eip712_domain_separator := eip712_domain_separator]

exports: (
    eip712_domain_separator.eip712Domain,
    escrow.__interface__,
    registry_client.registry,
    orders.__interface__,
    poco.__interface__,
)


@deploy
def __init__(token: IERC20, registry: IRegistry, score_stake_floor: uint256):
    """
    @notice Deploys the hub for `token` and `registry`; the deployer links the
            Contributions contract afterwards.
    @param token The ERC-20 payment token.
    @param registry The Registry contract.
    @param score_stake_floor Smallest worker stake of a deal whose replicated wins raise
           scores (value at risk behind every point of reputation).
    """
    ecdsa.__init__()
    signature_checker.__init__()
    eip712_domain_separator.__init__("Comptoir", "1")
    escrow.__init__(token)
    registry_client.__init__(registry)
    orders.__init__()
    poco.__init__(score_stake_floor)
