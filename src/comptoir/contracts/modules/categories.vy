# pragma version ~=0.4.3
"""
@title Categories: classes of tasks by maximum duration
@custom:contract-name categories
@license AGPL-3.0-only
@notice A category fixes the time reference of its tasks. A deal made at time t in a
        category with reference T accepts contributions until t + 7T and must be
        finalized before t + 10T; after that anyone can claim its unfinished tasks.
        Only the protocol owner creates categories.
"""

from snekmate.auth import ownable

uses: ownable


event CategoryCreated:
    category: indexed(uint256)
    name: String[32]
    time_ref: uint256


category_count: public(uint256)
category_name: public(HashMap[uint256, String[32]])
category_time_ref: public(HashMap[uint256, uint256])


@deploy
def __init__():
    pass


@external
def create_category(name: String[32], time_ref: uint256) -> uint256:
    """
    @notice Creates a category (protocol owner only). Ids start at 0.
    @param name Short name, e.g. "S".
    @param time_ref Time reference in seconds (maximum run time of one task).
    @return The new category id.
    """
    ownable._check_owner()
    assert time_ref > 0, "categories: zero time reference"
    assert time_ref <= 365 * 86400, "categories: time reference above one year"
    category: uint256 = self.category_count
    self.category_count = category + 1
    self.category_name[category] = name
    self.category_time_ref[category] = time_ref
    log CategoryCreated(category=category, name=name, time_ref=time_ref)
    return category


@internal
@view
def _time_ref(category: uint256) -> uint256:
    # every category has a non-zero reference, so zero means unknown: one read, not two
    time_ref: uint256 = self.category_time_ref[category]
    assert time_ref != 0, "categories: unknown category"
    return time_ref
