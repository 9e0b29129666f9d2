# pragma version ~=0.4.3
"""
@title Comptoir on-chain contribution path
@custom:contract-name Contributions
@license AGPL-3.0-only
@notice The path by which a worker gets its own contribution on-chain when the
        scheduler ignores it: commit (`contribute`, with the scheduler's signed
        authorization), `reveal`, then `finalize` by the scheduler, or `reopen` when no
        member of the consensus group revealed in time. Consensus uses the same
        credibility rule as the hub's fast path. Stakes stay in the hub's escrow; this
        contract only keeps the commitments and asks the hub to settle.
"""

from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator
from snekmate.utils import signature_checker

initializes: ecdsa
initializes: signature_checker
initializes: eip712_domain_separator

exports: eip712_domain_separator.eip712Domain


struct Deal:
    request_hash: bytes32
    first_task: uint256
    volume: uint256
    requester: address
    app_owner: address
    app_price: uint256
    dataset_owner: address
    dataset_price: uint256
    scheduler: address
    workerpool_price: uint256
    scheduler_stake: uint256
    worker_stake: uint256
    scheduler_reward_ratio: uint256
    trust: uint256
    contribution_deadline: uint256
    final_deadline: uint256
    callback: address


struct Contribution:
    status: uint8
    result_hash: bytes32
    result_seal: bytes32
    weight: uint256


interface IHub:
    def onchain_open(deal: Deal, index: uint256, worker: address) -> bytes32: nonpayable
    def onchain_settle(deal: Deal, index: uint256, digest: bytes32, workers: DynArray[address, 16], payouts: DynArray[uint256, 16], won: DynArray[bool, 16], callback_data: Bytes[1024]): nonpayable
    def score(worker: address) -> uint256: view
    def is_settled(deal_id: bytes32, index: uint256) -> bool: view


MAX_CONTRIBUTORS: constant(uint256) = 16
MAX_WEIGHT: constant(uint256) = 1000
REVEAL_DEADLINE_RATIO: constant(uint256) = 2
AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256("Authorization(address worker,bytes32 task)")

TASK_UNSET: constant(uint8) = 0
TASK_ACTIVE: constant(uint8) = 1
TASK_REVEALING: constant(uint8) = 2
TASK_DONE: constant(uint8) = 3

CONTRIBUTED: constant(uint8) = 1
REVEALED: constant(uint8) = 2
REJECTED: constant(uint8) = 3


event Contributed:
    task_id: indexed(bytes32)
    worker: indexed(address)
    result_hash: bytes32


event ConsensusReached:
    task_id: indexed(bytes32)
    result_hash: bytes32
    reveal_deadline: uint256


event Revealed:
    task_id: indexed(bytes32)
    worker: indexed(address)
    digest: bytes32


event Reopened:
    task_id: indexed(bytes32)


hub: public(immutable(IHub))

task_status: public(HashMap[bytes32, uint8])
task_consensus: public(HashMap[bytes32, bytes32])
task_reveal_deadline: public(HashMap[bytes32, uint256])
task_total_weight: public(HashMap[bytes32, uint256])
task_reveals: public(HashMap[bytes32, uint256])
task_digest: public(HashMap[bytes32, bytes32])
_contributors: HashMap[bytes32, DynArray[address, MAX_CONTRIBUTORS]]
group_weight: public(HashMap[bytes32, HashMap[bytes32, uint256]])
contribution: public(HashMap[bytes32, HashMap[address, Contribution]])


@deploy
def __init__(hub_: IHub):
    """
    @notice Deploys the on-chain path of `hub_` (the hub must then link it).
    @param hub_ The hub.
    """
    ecdsa.__init__()
    signature_checker.__init__()
    eip712_domain_separator.__init__("Comptoir", "1")
    hub = hub_


@external
def contribute(deal: Deal, index: uint256, result_hash: bytes32, result_seal: bytes32, authorization: Bytes[65]):
    """
    @notice Commits a result on-chain (worker); the hub holds the deal's worker stake.
    @param deal The deal, as emitted by the hub.
    @param index Task index in the deal.
    @param result_hash keccak256(abi_encode(task_id, digest)).
    @param result_seal keccak256(abi_encode(worker, task_id, digest)).
    @param authorization The scheduler's EIP-712 signature (domain of this contract) of
           Authorization(worker, task).
    """
    assert result_hash != empty(bytes32), "contributions: empty result hash"
    task_id: bytes32 = extcall hub.onchain_open(deal, index, msg.sender)
    auth_hash: bytes32 = eip712_domain_separator._hash_typed_data_v4(keccak256(abi_encode(AUTHORIZATION_TYPEHASH, msg.sender, task_id)))
    assert signature_checker._is_valid_signature_now(deal.scheduler, auth_hash, authorization), "contributions: worker not authorized by the scheduler"
    status: uint8 = self.task_status[task_id]
    if status == TASK_UNSET:
        status = TASK_ACTIVE
        self.task_status[task_id] = TASK_ACTIVE
    assert status == TASK_ACTIVE, "contributions: task is not accepting contributions"
    assert self.contribution[task_id][msg.sender].status == 0, "contributions: already contributed"
    assert len(self._contributors[task_id]) < MAX_CONTRIBUTORS, "contributions: too many contributions"
    weight: uint256 = min(max(staticcall hub.score(msg.sender) // 3, 3) - 1, MAX_WEIGHT)
    self.contribution[task_id][msg.sender] = Contribution(status=CONTRIBUTED, result_hash=result_hash, result_seal=result_seal, weight=weight)
    self._contributors[task_id].append(msg.sender)
    group: uint256 = self.group_weight[task_id][result_hash]
    grown: uint256 = max(group, 1) * weight
    total: uint256 = self.task_total_weight[task_id] + grown - group
    self.group_weight[task_id][result_hash] = grown
    self.task_total_weight[task_id] = total
    log Contributed(task_id=task_id, worker=msg.sender, result_hash=result_hash)
    if grown * deal.trust > (1 + total) * (deal.trust - 1):
        reveal_deadline: uint256 = block.timestamp + (deal.final_deadline - deal.contribution_deadline) // 3 * REVEAL_DEADLINE_RATIO
        self.task_status[task_id] = TASK_REVEALING
        self.task_consensus[task_id] = result_hash
        self.task_reveal_deadline[task_id] = reveal_deadline
        log ConsensusReached(task_id=task_id, result_hash=result_hash, reveal_deadline=reveal_deadline)


@external
def reveal(deal: Deal, index: uint256, digest: bytes32):
    """
    @notice Reveals the digest behind the caller's contribution to the consensus result.
    @param deal The deal.
    @param index Task index in the deal.
    @param digest The result digest committed to.
    """
    task_id: bytes32 = self._task_id(deal, index)
    assert self.task_status[task_id] == TASK_REVEALING, "contributions: task is not revealing"
    assert block.timestamp < self.task_reveal_deadline[task_id], "contributions: reveal deadline passed"
    c: Contribution = self.contribution[task_id][msg.sender]
    assert c.status == CONTRIBUTED, "contributions: nothing to reveal"
    assert c.result_hash == self.task_consensus[task_id], "contributions: contribution is not the consensus"
    assert c.result_hash == keccak256(abi_encode(task_id, digest)), "contributions: digest does not match the result hash"
    assert c.result_seal == keccak256(abi_encode(msg.sender, task_id, digest)), "contributions: digest does not match the seal"
    self.contribution[task_id][msg.sender].status = REVEALED
    self.task_reveals[task_id] += 1
    self.task_digest[task_id] = digest
    log Revealed(task_id=task_id, worker=msg.sender, digest=digest)


@external
def reopen(deal: Deal, index: uint256):
    """
    @notice Reopens a task whose consensus group revealed nothing in time (scheduler);
            that group's members are rejected and lose their stake at settlement.
    @param deal The deal.
    @param index Task index in the deal.
    """
    assert msg.sender == deal.scheduler, "contributions: caller is not the scheduler"
    task_id: bytes32 = self._task_id(deal, index)
    assert self.task_status[task_id] == TASK_REVEALING, "contributions: task is not revealing"
    assert block.timestamp >= self.task_reveal_deadline[task_id], "contributions: reveal deadline not reached"
    assert self.task_reveals[task_id] == 0, "contributions: a winner revealed; finalize instead"
    consensus_hash: bytes32 = self.task_consensus[task_id]
    for worker: address in self._contributors[task_id]:
        if self.contribution[task_id][worker].result_hash == consensus_hash:
            self.contribution[task_id][worker].status = REJECTED
    self.task_total_weight[task_id] -= self.group_weight[task_id][consensus_hash]
    self.group_weight[task_id][consensus_hash] = 0
    self.task_consensus[task_id] = empty(bytes32)
    self.task_status[task_id] = TASK_ACTIVE
    log Reopened(task_id=task_id)


@external
def finalize(deal: Deal, index: uint256, callback_data: Bytes[1024]):
    """
    @notice Settles a task from its on-chain contributions (scheduler), once every
            consensus member revealed or the reveal deadline passed with a reveal.
            Revealed winners share the workers' reward pro rata of weight and get their
            stake back; wrong, silent and rejected contributors lose theirs to the winners.
    @param deal The deal.
    @param index Task index in the deal.
    @param callback_data Result for the requester contract (keccak256 must equal the digest).
    """
    assert msg.sender == deal.scheduler, "contributions: caller is not the scheduler"
    task_id: bytes32 = self._task_id(deal, index)
    assert self.task_status[task_id] == TASK_REVEALING, "contributions: task is not revealing"
    assert self.task_reveals[task_id] > 0, "contributions: no revealed result"
    consensus_hash: bytes32 = self.task_consensus[task_id]
    workers: DynArray[address, MAX_CONTRIBUTORS] = self._contributors[task_id]
    if block.timestamp < self.task_reveal_deadline[task_id]:
        for worker: address in workers:
            c: Contribution = self.contribution[task_id][worker]
            assert c.result_hash != consensus_hash or c.status != CONTRIBUTED, "contributions: waiting for reveals"
    reward: uint256 = deal.workerpool_price * (100 - deal.scheduler_reward_ratio) // 100
    weight_sum: uint256 = 0
    for worker: address in workers:
        c: Contribution = self.contribution[task_id][worker]
        if c.status == REVEALED:
            weight_sum += c.weight
        else:
            reward += deal.worker_stake
    payouts: DynArray[uint256, MAX_CONTRIBUTORS] = []
    won: DynArray[bool, MAX_CONTRIBUTORS] = []
    for worker: address in workers:
        c: Contribution = self.contribution[task_id][worker]
        if c.status == REVEALED:
            payouts.append(reward * c.weight // weight_sum + deal.worker_stake)
            won.append(True)
        else:
            payouts.append(0)
            won.append(False)
    self.task_status[task_id] = TASK_DONE
    extcall hub.onchain_settle(deal, index, self.task_digest[task_id], workers, payouts, won, callback_data)


@external
@view
def contributors(task_id: bytes32) -> DynArray[address, MAX_CONTRIBUTORS]:
    """
    @notice Workers with an on-chain contribution to a task, in contribution order.
    @param task_id keccak256(abi_encode(deal_id, index)).
    @return Their addresses.
    """
    return self._contributors[task_id]


@external
@view
def claim_refunds(task_id: bytes32) -> (DynArray[address, MAX_CONTRIBUTORS], uint256):
    """
    @notice What a claim of this task gives back: the contributors whose stake returns
            (all but those rejected by `reopen`) and the number of stakes held.
    @param task_id keccak256(abi_encode(deal_id, index)).
    @return Contributors to refund, and the count of all held stakes.
    """
    refunds: DynArray[address, MAX_CONTRIBUTORS] = []
    workers: DynArray[address, MAX_CONTRIBUTORS] = self._contributors[task_id]
    for worker: address in workers:
        if self.contribution[task_id][worker].status != REJECTED:
            refunds.append(worker)
    return refunds, len(workers)


@internal
@view
def _task_id(deal: Deal, index: uint256) -> bytes32:
    deal_id: bytes32 = keccak256(abi_encode(deal))
    task_id: bytes32 = keccak256(abi_encode(deal_id, index))
    assert self.task_status[task_id] != TASK_UNSET, "contributions: no on-chain contribution for this task"
    assert not staticcall hub.is_settled(deal_id, index), "contributions: task already settled"
    return task_id
