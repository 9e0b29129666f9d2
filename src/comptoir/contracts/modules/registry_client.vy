# pragma version ~=0.4.3
"""
@title Link from the hub to the registry contract
@custom:contract-name registry_client
@license AGPL-3.0-only
@notice The registries live in their own contract (EIP-170 leaves no room for them in
        the hub); a match reads everything it needs from them in one static call.
"""

from interfaces import IRegistry

KIND_APP: constant(uint8) = 1
KIND_DATASET: constant(uint8) = 2
KIND_WORKERPOOL: constant(uint8) = 3
OWNER_MASK: constant(uint256) = (1 << 160) - 1

registry: public(immutable(IRegistry))


@deploy
def __init__(registry_: IRegistry):
    registry = registry_


@internal
@view
def _require_owner(asset: uint256, kind: uint8) -> address:
    return staticcall registry.require_owner(asset, kind)
