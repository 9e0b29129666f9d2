# pragma version ~=0.4.3
"""
@title Registry of apps, datasets and workerpools
@custom:contract-name registry
@license AGPL-3.0-only
@notice Assets are numbered from 1 in one sequence shared by the three kinds. Each has an
        owner (transferable), and what a worker needs to verify what it runs: the
        location of the bytes and their sha256 checksum; apps also carry their packaging
        kind (OCI image or bundle) and an enclave measurement for later TEE support.
        Workerpools carry their policy: worker stake and scheduler reward share, in
        percent of the workerpool price, and as location their scheduler's API
        endpoint. Owners may move an asset's location (set_location).
"""

KIND_APP: constant(uint8) = 1
KIND_DATASET: constant(uint8) = 2
KIND_WORKERPOOL: constant(uint8) = 3

APP_TYPE_OCI: constant(uint8) = 1
APP_TYPE_BUNDLE: constant(uint8) = 2

MAX_RATIO: constant(uint256) = 100
OWNER_MASK: constant(uint256) = (1 << 160) - 1


event AssetRegistered:
    asset: indexed(uint256)
    kind: indexed(uint8)
    owner: indexed(address)
    name: String[64]
    location: String[256]
    checksum: bytes32


event AssetTransferred:
    asset: indexed(uint256)
    previous_owner: indexed(address)
    new_owner: indexed(address)


event AssetLocationUpdated:
    asset: indexed(uint256)
    location: String[256]


event WorkerpoolPolicyUpdated:
    workerpool: indexed(uint256)
    worker_stake_ratio: uint256
    scheduler_reward_ratio: uint256


struct Asset:
    kind: uint8
    owner: address
    name: String[64]
    location: String[256]
    checksum: bytes32
    app_type: uint8
    enclave_measurement: bytes32


asset_count: public(uint256)
# @dev One packed word per asset, read by every match: bits 0-159 owner, 160-167 kind,
# 168-175 worker stake ratio, 176-183 scheduler reward ratio (workerpools only).
_records: HashMap[uint256, uint256]
_assets: HashMap[uint256, Asset]


@deploy
def __init__():
    pass


@external
def register_app(name: String[64], app_type: uint8, location: String[256], checksum: bytes32, enclave_measurement: bytes32) -> uint256:
    """
    @notice Registers an app owned by the caller.
    @param name Human-readable name.
    @param app_type 1 = OCI image archive, 2 = bundle (archive + manifest).
    @param location Where the bytes are (URL or storage reference).
    @param checksum sha256 of the archive; workers refuse bytes that do not match.
    @param enclave_measurement TEE enclave measurement (zero when not a TEE app).
    @return The new asset id.
    """
    assert app_type == APP_TYPE_OCI or app_type == APP_TYPE_BUNDLE, "registry: unknown app type"
    return self._register(KIND_APP, name, location, checksum, app_type, enclave_measurement)


@external
def register_dataset(name: String[64], location: String[256], checksum: bytes32) -> uint256:
    """
    @notice Registers a dataset owned by the caller.
    @param name Human-readable name.
    @param location Where the (encrypted) bytes are.
    @param checksum sha256 of the encrypted bytes.
    @return The new asset id.
    """
    return self._register(KIND_DATASET, name, location, checksum, 0, empty(bytes32))


@external
def register_workerpool(name: String[64], worker_stake_ratio: uint256, scheduler_reward_ratio: uint256) -> uint256:
    """
    @notice Registers a workerpool whose scheduler is the caller.
    @param name Human-readable description.
    @param worker_stake_ratio Stake per contribution, percent of the workerpool price.
    @param scheduler_reward_ratio Scheduler's share of the workerpool price, percent.
    @return The new asset id.
    """
    asset: uint256 = self._register(KIND_WORKERPOOL, name, "", empty(bytes32), 0, empty(bytes32))
    self._set_policy(asset, worker_stake_ratio, scheduler_reward_ratio)
    return asset


@external
def set_workerpool_policy(workerpool: uint256, worker_stake_ratio: uint256, scheduler_reward_ratio: uint256):
    """
    @notice Changes a workerpool's policy; deals already made keep theirs.
    @param workerpool The workerpool id (caller must own it).
    @param worker_stake_ratio Stake per contribution, percent of the workerpool price.
    @param scheduler_reward_ratio Scheduler's share of the workerpool price, percent.
    """
    assert self._require_kind(workerpool, KIND_WORKERPOOL) == msg.sender, "registry: caller is not the owner"
    self._set_policy(workerpool, worker_stake_ratio, scheduler_reward_ratio)


@external
def set_location(asset: uint256, location: String[256]):
    """
    @notice Changes where an asset is found: an app's or dataset's bytes (its checksum
            still pins them), or a workerpool's scheduler API endpoint, where workers
            join and requesters fetch results.
    @param asset The asset id (caller must own it).
    @param location The new location (URL or storage reference).
    """
    owner: address = convert(self._records[asset] & OWNER_MASK, address)
    assert owner != empty(address), "registry: unknown asset"
    assert owner == msg.sender, "registry: caller is not the owner"
    self._assets[asset].location = location
    log AssetLocationUpdated(asset=asset, location=location)


@external
def transfer_asset(asset: uint256, new_owner: address):
    """
    @notice Transfers an asset; future deals pay the new owner.
    @param asset The asset id (caller must own it).
    @param new_owner The new owner, not the zero address.
    """
    record: uint256 = self._records[asset]
    owner: address = convert(record & OWNER_MASK, address)
    assert owner != empty(address), "registry: unknown asset"
    assert owner == msg.sender, "registry: caller is not the owner"
    assert new_owner != empty(address), "registry: zero owner"
    self._records[asset] = (record & ~OWNER_MASK) | convert(new_owner, uint256)
    self._assets[asset].owner = new_owner
    log AssetTransferred(asset=asset, previous_owner=owner, new_owner=new_owner)


@external
@view
def owner_of(asset: uint256) -> address:
    """
    @notice The owner of an asset (zero address when unknown).
    @param asset The asset id.
    @return The owner.
    """
    return convert(self._records[asset] & OWNER_MASK, address)


@external
@view
def kind_of(asset: uint256) -> uint8:
    """
    @notice The kind of an asset: 1 app, 2 dataset, 3 workerpool, 0 unknown.
    @param asset The asset id.
    @return The kind.
    """
    return convert((self._records[asset] >> 160) & 255, uint8)


@external
@view
def workerpool_policy(workerpool: uint256) -> (uint256, uint256):
    """
    @notice A workerpool's policy.
    @param workerpool The workerpool id.
    @return Worker stake ratio and scheduler reward ratio, in percent of the price.
    """
    record: uint256 = self._records[workerpool]
    return (record >> 168) & 255, (record >> 176) & 255


@external
@view
def asset(asset: uint256) -> Asset:
    """
    @notice Everything recorded about an asset.
    @param asset The asset id.
    @return The asset record (kind 0 when unknown).
    """
    return self._assets[asset]


@internal
def _register(kind: uint8, name: String[64], location: String[256], checksum: bytes32, app_type: uint8, measurement: bytes32) -> uint256:
    asset: uint256 = self.asset_count + 1
    self.asset_count = asset
    self._records[asset] = convert(msg.sender, uint256) | (convert(kind, uint256) << 160)
    self._assets[asset] = Asset(kind=kind, owner=msg.sender, name=name, location=location, checksum=checksum, app_type=app_type, enclave_measurement=measurement)
    log AssetRegistered(asset=asset, kind=kind, owner=msg.sender, name=name, location=location, checksum=checksum)
    return asset


@internal
def _set_policy(workerpool: uint256, worker_stake_ratio: uint256, scheduler_reward_ratio: uint256):
    assert worker_stake_ratio <= MAX_RATIO, "registry: worker stake ratio above 100"
    assert scheduler_reward_ratio <= MAX_RATIO, "registry: scheduler reward ratio above 100"
    record: uint256 = self._records[workerpool] & ((1 << 168) - 1)
    self._records[workerpool] = record | (worker_stake_ratio << 168) | (scheduler_reward_ratio << 176)
    log WorkerpoolPolicyUpdated(workerpool=workerpool, worker_stake_ratio=worker_stake_ratio, scheduler_reward_ratio=scheduler_reward_ratio)


@external
@view
def require_owner(asset: uint256, kind: uint8) -> address:
    """
    @notice The owner of an asset, reverting unless it is registered with `kind`.
    @param asset The asset id.
    @param kind 1 app, 2 dataset, 3 workerpool.
    @return The owner.
    """
    return self._require_kind(asset, kind)


@internal
@view
def _require_kind(asset: uint256, kind: uint8) -> address:
    """@dev Returns the owner of `asset`, reverting unless it is registered with `kind`."""
    return convert(self._require_record(asset, kind) & OWNER_MASK, address)


@internal
@view
def _require_record(asset: uint256, kind: uint8) -> uint256:
    """@dev The packed record of `asset`, reverting unless it is registered with `kind`."""
    record: uint256 = self._records[asset]
    assert (record >> 160) & 255 == convert(kind, uint256), "registry: unknown asset or wrong kind"
    return record
