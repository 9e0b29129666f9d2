# pragma version ~=0.4.3
"""
@title Signed orders (EIP-712)
@custom:contract-name orders
@license AGPL-3.0-only
@notice The four order types of the market, hashed with EIP-712 under the domain
        ("Comptoir", "1", chain id, this contract). An order is authorized by its
        owner's signature (EOA or ERC-1271 contract), by a presign transaction, or by
        the owner sending the match itself. `consumed` counts the volume already used:
        one order feeds several deals until its volume is spent (partial fills); a
        cancel sets it to the maximum, which also makes every replay fail.
        Order hashes are not exposed as views (no room under EIP-170): the hub emits
        them in DealCreated, and the Python layer computes the same digests.
"""

from snekmate.utils import eip712_domain_separator
from snekmate.utils import signature_checker
from . import registry_client

uses: eip712_domain_separator
uses: registry_client


struct AppOrder:
    app: uint256
    app_price: uint256
    volume: uint256
    tag: bytes32
    dataset_restrict: uint256
    workerpool_restrict: uint256
    requester_restrict: address
    salt: bytes32


struct DatasetOrder:
    dataset: uint256
    dataset_price: uint256
    volume: uint256
    tag: bytes32
    app_restrict: uint256
    workerpool_restrict: uint256
    requester_restrict: address
    salt: bytes32


struct WorkerpoolOrder:
    workerpool: uint256
    workerpool_price: uint256
    volume: uint256
    tag: bytes32
    category: uint256
    trust: uint256
    app_restrict: uint256
    dataset_restrict: uint256
    requester_restrict: address
    salt: bytes32


struct RequestOrder:
    app: uint256
    app_max_price: uint256
    dataset: uint256
    dataset_max_price: uint256
    workerpool: uint256
    workerpool_max_price: uint256
    requester: address
    volume: uint256
    tag: bytes32
    category: uint256
    trust: uint256
    min_worker_stake: uint256
    beneficiary: address
    callback: address
    params: String[512]
    salt: bytes32


APP_ORDER_TYPEHASH: constant(bytes32) = keccak256("AppOrder(uint256 app,uint256 app_price,uint256 volume,bytes32 tag,uint256 dataset_restrict,uint256 workerpool_restrict,address requester_restrict,bytes32 salt)")
DATASET_ORDER_TYPEHASH: constant(bytes32) = keccak256("DatasetOrder(uint256 dataset,uint256 dataset_price,uint256 volume,bytes32 tag,uint256 app_restrict,uint256 workerpool_restrict,address requester_restrict,bytes32 salt)")
WORKERPOOL_ORDER_TYPEHASH: constant(bytes32) = keccak256("WorkerpoolOrder(uint256 workerpool,uint256 workerpool_price,uint256 volume,bytes32 tag,uint256 category,uint256 trust,uint256 app_restrict,uint256 dataset_restrict,address requester_restrict,bytes32 salt)")
REQUEST_ORDER_TYPEHASH: constant(bytes32) = keccak256("RequestOrder(uint256 app,uint256 app_max_price,uint256 dataset,uint256 dataset_max_price,uint256 workerpool,uint256 workerpool_max_price,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,uint256 min_worker_stake,address beneficiary,address callback,string params,bytes32 salt)")

CANCELLED: constant(uint256) = max_value(uint256)


event OrderCancelled:
    order_hash: indexed(bytes32)
    owner: indexed(address)


event OrderPresigned:
    order_hash: indexed(bytes32)
    owner: indexed(address)


consumed: public(HashMap[bytes32, uint256])
presigned: public(HashMap[bytes32, bool])


@deploy
def __init__():
    pass


@external
def cancel_app_order(order: AppOrder):
    """
    @notice Cancels an app order (caller must own the app); its remaining volume becomes 0.
    @param order The order as signed.
    """
    self._cancel(self._hash_app_order(order), registry_client._require_owner(order.app, registry_client.KIND_APP))


@external
def cancel_dataset_order(order: DatasetOrder):
    """
    @notice Cancels a dataset order (caller must own the dataset).
    @param order The order as signed.
    """
    self._cancel(self._hash_dataset_order(order), registry_client._require_owner(order.dataset, registry_client.KIND_DATASET))


@external
def cancel_workerpool_order(order: WorkerpoolOrder):
    """
    @notice Cancels a workerpool order (caller must own the workerpool).
    @param order The order as signed.
    """
    self._cancel(self._hash_workerpool_order(order), registry_client._require_owner(order.workerpool, registry_client.KIND_WORKERPOOL))


@external
def cancel_request_order(order: RequestOrder):
    """
    @notice Cancels a request order (caller must be its requester).
    @param order The order as signed.
    """
    self._cancel(self._hash_request_order(order), order.requester)


@external
def presign_app_order(order: AppOrder):
    """
    @notice Authorizes an app order by transaction instead of signature (app owner only).
    @param order The order.
    """
    self._presign(self._hash_app_order(order), registry_client._require_owner(order.app, registry_client.KIND_APP))


@external
def presign_workerpool_order(order: WorkerpoolOrder):
    """
    @notice Authorizes a workerpool order by transaction (workerpool owner only).
    @param order The order.
    """
    self._presign(self._hash_workerpool_order(order), registry_client._require_owner(order.workerpool, registry_client.KIND_WORKERPOOL))


@external
def presign_request_order(order: RequestOrder):
    """
    @notice Authorizes a request order by transaction (its requester only); lets a
            smart contract requester place orders without ERC-1271.
    @param order The order.
    """
    self._presign(self._hash_request_order(order), order.requester)


@internal
def _cancel(order_hash: bytes32, owner: address):
    assert msg.sender == owner, "orders: caller is not the order owner"
    self.consumed[order_hash] = CANCELLED
    log OrderCancelled(order_hash=order_hash, owner=owner)


@internal
def _presign(order_hash: bytes32, owner: address):
    assert msg.sender == owner, "orders: caller is not the order owner"
    self.presigned[order_hash] = True
    log OrderPresigned(order_hash=order_hash, owner=owner)


@internal
@view
def _remaining(order_hash: bytes32, volume: uint256) -> uint256:
    """@dev Volume still available; 0 once cancelled or spent."""
    used: uint256 = self.consumed[order_hash]
    if used >= volume:
        return 0
    return volume - used


@internal
@view
def _check_signature(signer: address, order_hash: bytes32, signature: Bytes[65], reason: String[64]):
    """@dev An order is authorized by its signer sending the match, a presign, or a signature."""
    if msg.sender == signer:
        return
    if len(signature) == 0:
        assert self.presigned[order_hash], reason
        return
    assert signature_checker._is_valid_signature_now(signer, order_hash, signature), reason


@internal
@view
def _hash_app_order(o: AppOrder) -> bytes32:
    return eip712_domain_separator._hash_typed_data_v4(keccak256(abi_encode(
        APP_ORDER_TYPEHASH, o.app, o.app_price, o.volume, o.tag, o.dataset_restrict,
        o.workerpool_restrict, o.requester_restrict, o.salt)))


@internal
@view
def _hash_dataset_order(o: DatasetOrder) -> bytes32:
    return eip712_domain_separator._hash_typed_data_v4(keccak256(abi_encode(
        DATASET_ORDER_TYPEHASH, o.dataset, o.dataset_price, o.volume, o.tag, o.app_restrict,
        o.workerpool_restrict, o.requester_restrict, o.salt)))


@internal
@view
def _hash_workerpool_order(o: WorkerpoolOrder) -> bytes32:
    return eip712_domain_separator._hash_typed_data_v4(keccak256(abi_encode(
        WORKERPOOL_ORDER_TYPEHASH, o.workerpool, o.workerpool_price, o.volume, o.tag,
        o.category, o.trust, o.app_restrict, o.dataset_restrict, o.requester_restrict, o.salt)))


@internal
@view
def _hash_request_order(o: RequestOrder) -> bytes32:
    return eip712_domain_separator._hash_typed_data_v4(keccak256(abi_encode(
        REQUEST_ORDER_TYPEHASH, o.app, o.app_max_price, o.dataset, o.dataset_max_price,
        o.workerpool, o.workerpool_max_price, o.requester, o.volume, o.tag, o.category,
        o.trust, o.min_worker_stake, o.beneficiary, o.callback, keccak256(o.params), o.salt)))
