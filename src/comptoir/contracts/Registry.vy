# pragma version ~=0.4.3
"""
@title Comptoir registry: apps, datasets, workerpools and categories
@custom:contract-name Registry
@license AGPL-3.0-only
@notice Assets and categories, in a contract of their own so the hub stays within
        EIP-170. The deployer owns it and creates the categories.
"""

from snekmate.auth import ownable
from modules import registry
from modules import categories

initializes: ownable
initializes: registry
initializes: categories[ownable := ownable]

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    registry.__interface__,
    categories.__interface__,
)


@deploy
def __init__():
    """
    @notice Deploys an empty registry owned by the deployer.
    """
    ownable.__init__()
    registry.__init__()
    categories.__init__()


@external
@view
def match_info(app: uint256, dataset: uint256, workerpool: uint256, category: uint256) -> (address, address, uint256, uint256):
    """
    @notice Everything a match needs, in one call; reverts on unknown or mistyped assets.
    @param app The app id.
    @param dataset The dataset id, 0 for none.
    @param workerpool The workerpool id.
    @param category The category id.
    @return App owner, dataset owner (zero if none), packed workerpool record, category time reference.
    """
    app_owner: address = registry._require_kind(app, registry.KIND_APP)
    dataset_owner: address = empty(address)
    if dataset != 0:
        dataset_owner = registry._require_kind(dataset, registry.KIND_DATASET)
    return app_owner, dataset_owner, registry._require_record(workerpool, registry.KIND_WORKERPOOL), categories._time_ref(category)
