# pragma version ~=0.4.3
"""
@title Proof-of-Contribution: deals, tasks, consensus, payment
@custom:contract-name poco
@license AGPL-3.0-only
@notice `match_orders` turns an app, an optional dataset, a workerpool and a request
        order into a deal: a bag of `volume` tasks, paid for up front by the requester
        and backed by the scheduler's stake. Only `keccak256(abi_encode(deal))` is kept
        on-chain, in the first word of the deal's task bitmap; every later call passes
        the `Deal` back and is checked against that hash.

        Tasks are settled by one of two paths:
        - fast path (`finalize`): the scheduler submits, for a batch of tasks, every
          worker-signed commitment it gathered together with the revealed result; the
          contract checks signatures, commitments and credibility, and pays, in one
          transaction;
        - on-chain path (the Contributions contract: `contribute`, `reveal`, `reopen`,
          `finalize`): a worker holding the scheduler's signed authorization commits
          and reveals by itself, so a scheduler that ignores it cannot keep it out.
          Once a task has an on-chain contribution the fast path is closed for it; the
          Contributions contract settles it through `onchain_settle`.
        After the final deadline anyone may `claim` unfinished tasks: the requester gets
        the price back plus the scheduler's stake; on-chain worker stakes go back.

        Consensus: a worker of score s weighs w = min(max(s // 3, 3) - 1, 1000). A result
        group weighs the product of its members' weights; the task reaches consensus on
        group G when  G * trust > (1 + sum of all groups) * (trust - 1), i.e. when G's
        credibility exceeds 1 - 1/trust (Sarmenta 2002, as in iExec PoCo).
"""

from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator
from . import escrow
from . import registry_client
from . import orders

uses: escrow
uses: registry_client
uses: orders
uses: eip712_domain_separator


interface IContributions:
    def claim_refunds(task_id: bytes32) -> (DynArray[address, 16], uint256): view


# ---------------------------------------------------------------- types

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


struct TaskResult:
    index: uint256
    digest: bytes32
    winners: uint256
    losers: uint256


struct WinnerSig:
    worker: address
    r: bytes32
    vs: bytes32


struct LoserSig:
    worker: address
    result_hash: bytes32
    result_seal: bytes32
    r: bytes32
    vs: bytes32


# ---------------------------------------------------------------- constants

SCHEDULER_STAKE_RATIO: constant(uint256) = 30
CONTRIBUTION_DEADLINE_RATIO: constant(uint256) = 7
FINAL_DEADLINE_RATIO: constant(uint256) = 10
MAX_WEIGHT: constant(uint256) = 1000
MAX_TRUST: constant(uint256) = 1000000
MAX_PRICE: constant(uint256) = 2**128
MAX_VOLUME: constant(uint256) = 2**64
MAX_BATCH: constant(uint256) = 32
MAX_CONTRIBUTORS: constant(uint256) = 16
MAX_WINNER_SIGS: constant(uint256) = 128
MAX_LOSER_SIGS: constant(uint256) = 32
MAX_CLAIM: constant(uint256) = 256
CALLBACK_GAS: constant(uint256) = 100000
MAX_CALLBACK_DATA: constant(uint256) = 1024

CONTRIBUTION_TYPEHASH: constant(bytes32) = keccak256("Contribution(bytes32 task,bytes32 result_hash,bytes32 result_seal)")

# ---------------------------------------------------------------- events

event DealCreated:
    deal_id: indexed(bytes32)
    workerpool: indexed(uint256)
    requester: indexed(address)
    deal: Deal
    app: uint256
    dataset: uint256
    category: uint256
    tag: bytes32
    beneficiary: address
    params: String[512]
    app_order_hash: bytes32
    dataset_order_hash: bytes32
    workerpool_order_hash: bytes32


event TaskFinalized:
    task_id: indexed(bytes32)
    deal_id: indexed(bytes32)
    index: uint256
    digest: bytes32


event TaskClaimed:
    task_id: indexed(bytes32)
    deal_id: indexed(bytes32)
    index: uint256


event WorkerRewarded:
    task_id: indexed(bytes32)
    worker: indexed(address)
    amount: uint256


event WorkerPenalized:
    task_id: indexed(bytes32)
    worker: indexed(address)
    seized: uint256


event CallbackFailed:
    task_id: indexed(bytes32)
    callback: indexed(address)


# ---------------------------------------------------------------- storage

# @dev Two bits per task, so one storage read serves both checks of the fast path: with
# b = 2 * (index + 1), bit b % 256 of word b // 256 marks a settled task (finalized or
# claimed) and the bit above it a task with on-chain contributions (fast path closed).
# Bit 0 of word 0 marks that the deal exists.
task_bits: HashMap[bytes32, HashMap[uint256, uint256]]
score: public(HashMap[address, uint256])

# @dev Worker stakes held for on-chain contributions (part of the escrow invariant).
held_stakes: public(uint256)
onchain_path: public(address)
deployer: address
# @dev Score is earned only with value at risk: a replicated win counts when the deal's
# worker stake is at least this much, so farming a score puts that stake behind each point.
score_stake_floor: public(immutable(uint256))


@deploy
def __init__(score_stake_floor_: uint256):
    self.deployer = msg.sender
    score_stake_floor = score_stake_floor_


# ---------------------------------------------------------------- matching

@external
def match_orders(
    app_order: orders.AppOrder, app_sig: Bytes[65],
    dataset_order: orders.DatasetOrder, dataset_sig: Bytes[65],
    workerpool_order: orders.WorkerpoolOrder, workerpool_sig: Bytes[65],
    request: orders.RequestOrder, request_sig: Bytes[65],
) -> bytes32:
    """
    @notice Matches compatible orders into a deal of min(remaining volumes) tasks. The
            requester pays volume x (app + dataset + workerpool price) from its free
            balance; the scheduler stakes 30% of the workerpool price per task.
    @dev Pass an all-zero dataset order (dataset = 0) when the request has no dataset.
    @param app_order The app order.
    @param app_sig Its EIP-712 signature by the app owner (empty if presigned).
    @param dataset_order The dataset order, or all zeros.
    @param dataset_sig Its signature by the dataset owner.
    @param workerpool_order The workerpool order.
    @param workerpool_sig Its signature by the workerpool owner.
    @param request The request order.
    @param request_sig Its signature by the requester.
    @return The deal id.
    """
    # what matches what
    assert request.app == app_order.app, "poco: app order for another app"
    assert request.dataset == dataset_order.dataset, "poco: order for another dataset"
    assert request.workerpool == 0 or request.workerpool == workerpool_order.workerpool, "poco: request for another pool"
    assert request.category == workerpool_order.category, "poco: category mismatch"
    assert request.trust <= workerpool_order.trust, "poco: trust above workerpool's"
    assert request.trust <= MAX_TRUST, "poco: trust too high"
    assert app_order.app_price <= request.app_max_price, "poco: app price above maximum"
    assert dataset_order.dataset_price <= request.dataset_max_price, "poco: dataset price above max"
    assert workerpool_order.workerpool_price <= request.workerpool_max_price, "poco: pool price above maximum"
    assert app_order.app_price < MAX_PRICE and dataset_order.dataset_price < MAX_PRICE and workerpool_order.workerpool_price < MAX_PRICE, "poco: price too large"
    required_tag: uint256 = convert(request.tag, uint256) | convert(app_order.tag, uint256) | convert(dataset_order.tag, uint256)
    assert required_tag & ~convert(workerpool_order.tag, uint256) == 0, "poco: pool lacks a required tag"
    assert request.requester != empty(address), "poco: request without requester"

    workerpool: uint256 = workerpool_order.workerpool
    dataset: uint256 = dataset_order.dataset
    assert app_order.dataset_restrict == 0 or app_order.dataset_restrict == dataset, "poco: app restricts datasets"
    assert app_order.workerpool_restrict == 0 or app_order.workerpool_restrict == workerpool, "poco: app restricts pools"
    assert app_order.requester_restrict == empty(address) or app_order.requester_restrict == request.requester, "poco: app restricts requesters"
    assert workerpool_order.app_restrict == 0 or workerpool_order.app_restrict == request.app, "poco: pool restricts apps"
    assert workerpool_order.dataset_restrict == 0 or workerpool_order.dataset_restrict == dataset, "poco: pool restricts datasets"
    assert workerpool_order.requester_restrict == empty(address) or workerpool_order.requester_restrict == request.requester, "poco: pool restricts requesters"

    # who owns what
    app_owner: address = empty(address)
    dataset_owner: address = empty(address)
    pool_record: uint256 = 0
    time_ref: uint256 = 0
    app_owner, dataset_owner, pool_record, time_ref = staticcall registry_client.registry.match_info(request.app, dataset, workerpool, request.category)
    scheduler: address = convert(pool_record & registry_client.OWNER_MASK, address)

    # signatures and remaining volumes
    app_hash: bytes32 = orders._hash_app_order(app_order)
    orders._check_signature(app_owner, app_hash, app_sig, "poco: invalid app order signature")
    volume: uint256 = min(orders._remaining(app_hash, app_order.volume), MAX_VOLUME)

    dataset_hash: bytes32 = empty(bytes32)
    if dataset != 0:
        assert dataset_order.app_restrict == 0 or dataset_order.app_restrict == request.app, "poco: dataset restricts apps"
        assert dataset_order.workerpool_restrict == 0 or dataset_order.workerpool_restrict == workerpool, "poco: dataset restricts pools"
        assert dataset_order.requester_restrict == empty(address) or dataset_order.requester_restrict == request.requester, "poco: dataset limits requesters"
        dataset_hash = orders._hash_dataset_order(dataset_order)
        orders._check_signature(dataset_owner, dataset_hash, dataset_sig, "poco: bad dataset signature")
        volume = min(volume, orders._remaining(dataset_hash, dataset_order.volume))
    else:
        assert dataset_order.dataset_price == 0, "poco: price without dataset"

    pool_hash: bytes32 = orders._hash_workerpool_order(workerpool_order)
    orders._check_signature(scheduler, pool_hash, workerpool_sig, "poco: bad pool order signature")
    volume = min(volume, orders._remaining(pool_hash, workerpool_order.volume))

    request_hash: bytes32 = orders._hash_request_order(request)
    orders._check_signature(request.requester, request_hash, request_sig, "poco: bad request signature")
    first_task: uint256 = orders.consumed[request_hash]
    volume = min(volume, orders._remaining(request_hash, request.volume))
    assert volume > 0, "poco: an order is cancelled or fully consumed"

    # consume volumes
    orders.consumed[app_hash] += volume
    if dataset != 0:
        orders.consumed[dataset_hash] += volume
    orders.consumed[pool_hash] += volume
    orders.consumed[request_hash] = first_task + volume

    # deal record and escrow
    deal: Deal = Deal(
        request_hash=request_hash,
        first_task=first_task,
        volume=volume,
        requester=request.requester,
        app_owner=app_owner,
        app_price=app_order.app_price,
        dataset_owner=dataset_owner,
        dataset_price=dataset_order.dataset_price,
        scheduler=scheduler,
        workerpool_price=workerpool_order.workerpool_price,
        scheduler_stake=workerpool_order.workerpool_price * SCHEDULER_STAKE_RATIO // 100,
        worker_stake=workerpool_order.workerpool_price * ((pool_record >> 168) & 255) // 100,
        scheduler_reward_ratio=(pool_record >> 176) & 255,
        trust=max(request.trust, 1),
        contribution_deadline=block.timestamp + time_ref * CONTRIBUTION_DEADLINE_RATIO,
        final_deadline=block.timestamp + time_ref * FINAL_DEADLINE_RATIO,
        callback=request.callback,
    )
    # the pool's stake policy as it is now, not as the requester saw it: a pool that lowered
    # it after the requester chose it cannot take the request
    assert deal.worker_stake >= request.min_worker_stake, "poco: pool stakes below request"
    # @dev (request_hash, first_task) is unique, so the hash of the deal is a unique id.
    deal_id: bytes32 = keccak256(abi_encode(deal))
    assert self.task_bits[deal_id][0] == 0, "poco: deal exists"
    self.task_bits[deal_id][0] = 1

    task_price: uint256 = deal.app_price + deal.dataset_price + deal.workerpool_price
    escrow._debit(request.requester, task_price * volume, "poco: requester balance too low", True)
    escrow._debit(scheduler, deal.scheduler_stake * volume, "poco: scheduler stake too low", True)

    log DealCreated(
        deal_id=deal_id, workerpool=workerpool, requester=request.requester, deal=deal,
        app=request.app, dataset=dataset, category=request.category, tag=workerpool_order.tag,
        beneficiary=request.beneficiary, params=request.params, app_order_hash=app_hash,
        dataset_order_hash=dataset_hash, workerpool_order_hash=pool_hash,
    )
    return deal_id


# ---------------------------------------------------------------- fast path

@external
def finalize(deal: Deal, tasks: DynArray[TaskResult, MAX_BATCH], winners: DynArray[WinnerSig, MAX_WINNER_SIGS], losers: DynArray[LoserSig, MAX_LOSER_SIGS], callback_data: Bytes[MAX_CALLBACK_DATA]):
    """
    @notice Settles a batch of tasks of one deal from worker-signed commitments (scheduler only).
    @dev Task k consumes the next `tasks[k].winners` entries of `winners` and the next
         `tasks[k].losers` entries of `losers`, each run sorted by ascending worker
         address. A winner signed Contribution(task, keccak(task, digest),
         keccak(worker, task, digest)); a loser signed a commitment to another result.
         For a deal with a callback, the batch holds one task and keccak256(callback_data)
         must equal its digest.
    @param deal The deal, as emitted in DealCreated.
    @param tasks The tasks to settle, ascending by index.
    @param winners Signatures of the workers that agree with each task's digest.
    @param losers Signed commitments of the workers that do not.
    @param callback_data Result delivered to the requester contract (empty otherwise).
    """
    deal_id: bytes32 = self._check_deal(deal)
    assert msg.sender == deal.scheduler, "poco: caller is not the scheduler"
    assert block.timestamp < deal.final_deadline, "poco: final deadline passed"
    assert len(tasks) > 0, "poco: empty batch"
    if deal.callback != empty(address):
        assert len(tasks) == 1, "poco: one callback task a call"
        assert keccak256(callback_data) == tasks[0].digest, "poco: callback data not result"

    workers_base: uint256 = deal.workerpool_price * (100 - deal.scheduler_reward_ratio) // 100
    scheduler_total: uint256 = 0
    w_at: uint256 = 0
    l_at: uint256 = 0
    word_index: uint256 = max_value(uint256)
    word: uint256 = 0
    for t: TaskResult in tasks:
        assert t.index < deal.volume, "poco: task index out of range"
        assert t.winners > 0, "poco: task without winners"
        assert t.winners + t.losers <= MAX_CONTRIBUTORS, "poco: too many contributions"
        position: uint256 = 2 * (t.index + 1)
        if position // 256 != word_index:
            if word_index != max_value(uint256):
                self.task_bits[deal_id][word_index] = word
            word_index = position // 256
            word = self.task_bits[deal_id][word_index]
        bit: uint256 = 1 << (position % 256)
        assert word & bit == 0, "poco: task already settled"
        assert word & (bit << 1) == 0, "poco: task is on the chain path"
        word |= bit
        task_id: bytes32 = keccak256(abi_encode(deal_id, t.index))
        consensus_hash: bytes32 = keccak256(abi_encode(task_id, t.digest))
        replicated: bool = t.winners + t.losers > 1
        scored: bool = replicated and deal.worker_stake >= score_stake_floor

        # winners: check signatures, weigh them, reward them later; a lone contribution
        # needs no weight (trust 1 is always met, and it takes the whole reward)
        weighed: bool = replicated or deal.trust > 1
        group: uint256 = 1
        weight_sum: uint256 = 0
        previous: address = empty(address)
        for i: uint256 in range(w_at, w_at + t.winners, bound=MAX_WINNER_SIGS):
            ws: WinnerSig = winners[i]
            assert convert(ws.worker, uint256) > convert(previous, uint256), "poco: winners unsorted"
            previous = ws.worker
            seal: bytes32 = keccak256(abi_encode(ws.worker, task_id, t.digest))
            self._check_contribution_sig(ws.worker, task_id, consensus_hash, seal, ws.r, ws.vs)
            # skin in the game: the fast path holds no stake, so a winner must still have one
            assert escrow.balance_of[ws.worker] >= deal.worker_stake, "poco: winner stake too low"
            # and one that cannot leave before the deal can no longer settle (escrow.lock)
            assert deal.worker_stake == 0 or escrow.locked_until[ws.worker] >= deal.final_deadline, "poco: winner stake not locked"
            w: uint256 = 1
            if weighed:
                w = self._weight(ws.worker)
            group *= w
            weight_sum += w

        # losers: check signatures, seize stakes, lower scores, weigh rival groups
        seized: uint256 = 0
        rivals: uint256 = 0
        previous = empty(address)
        for j: uint256 in range(l_at, l_at + t.losers, bound=MAX_LOSER_SIGS):
            ls: LoserSig = losers[j]
            assert convert(ls.worker, uint256) > convert(previous, uint256), "poco: losers unsorted"
            previous = ls.worker
            assert ls.result_hash != consensus_hash, "poco: loser agrees with winners"
            for i: uint256 in range(w_at, w_at + t.winners, bound=MAX_WINNER_SIGS):
                assert winners[i].worker != ls.worker, "poco: worker is winner and loser"
            self._check_contribution_sig(ls.worker, task_id, ls.result_hash, ls.result_seal, ls.r, ls.vs)
            # rival group weight: product over losers sharing this hash, counted once
            first_of_group: bool = True
            product: uint256 = 1
            for k: uint256 in range(l_at, l_at + t.losers, bound=MAX_LOSER_SIGS):
                if losers[k].result_hash == ls.result_hash:
                    if k < j:
                        first_of_group = False
                        break
                    product *= self._weight(losers[k].worker)
            if first_of_group:
                rivals += product
            taken: uint256 = escrow._seize(ls.worker, deal.worker_stake)
            seized += taken
            self.score[ls.worker] = 0  # a wrong result wipes the reputation it cashed in
            log WorkerPenalized(task_id=task_id, worker=ls.worker, seized=taken)

        assert group * deal.trust > (1 + group + rivals) * (deal.trust - 1), "poco: consensus not reached"

        # pay winners pro rata of their weight; the rounding remainder goes to the scheduler
        reward: uint256 = workers_base + seized
        paid: uint256 = 0
        for i: uint256 in range(w_at, w_at + t.winners, bound=MAX_WINNER_SIGS):
            worker: address = winners[i].worker
            share: uint256 = reward
            if weighed:
                share = reward * self._weight(worker) // weight_sum
            escrow._credit(worker, share)
            paid += share
            if scored:
                self.score[worker] += 1
            log WorkerRewarded(task_id=task_id, worker=worker, amount=share)
        scheduler_total += deal.workerpool_price - workers_base + reward - paid + deal.scheduler_stake
        w_at += t.winners
        l_at += t.losers
        log TaskFinalized(task_id=task_id, deal_id=deal_id, index=t.index, digest=t.digest)

    assert w_at == len(winners) and l_at == len(losers), "poco: unused signatures"
    self.task_bits[deal_id][word_index] = word
    n: uint256 = len(tasks)
    escrow._credit(deal.app_owner, deal.app_price * n)
    escrow._credit(deal.dataset_owner, deal.dataset_price * n)
    escrow._credit(deal.scheduler, scheduler_total)
    if deal.callback != empty(address):
        self._callback(deal.callback, keccak256(abi_encode(deal_id, tasks[0].index)), callback_data)


# ---------------------------------------------------------------- on-chain path hooks

@external
def onchain_open(deal: Deal, index: uint256, worker: address) -> bytes32:
    """
    @notice Called by the Contributions contract when a worker commits on-chain: closes
            the fast path for the task and holds the worker's stake.
    @param deal The deal.
    @param index Task index in the deal.
    @param worker The contributing worker.
    @return The task id.
    """
    assert msg.sender == self.onchain_path, "poco: caller not Contributions"
    deal_id: bytes32 = self._check_deal(deal)
    position: uint256 = self._check_open_task(deal_id, deal, index)
    assert block.timestamp < deal.contribution_deadline, "poco: past contribution deadline"
    self.task_bits[deal_id][position // 256] |= 2 << (position % 256)
    escrow._debit(worker, deal.worker_stake, "poco: worker stake too low", False)
    self.held_stakes += deal.worker_stake
    return keccak256(abi_encode(deal_id, index))


@external
def onchain_settle(deal: Deal, index: uint256, digest: bytes32, workers: DynArray[address, MAX_CONTRIBUTORS], payouts: DynArray[uint256, MAX_CONTRIBUTORS], won: DynArray[bool, MAX_CONTRIBUTORS], callback_data: Bytes[MAX_CALLBACK_DATA]):
    """
    @notice Called by the Contributions contract to settle a task from its on-chain
            contributions: credits the payouts it computed, adjusts scores, pays the
            owners and the scheduler, releases the held stakes.
    @param deal The deal.
    @param index Task index in the deal.
    @param digest The revealed consensus digest.
    @param workers Every on-chain contributor of the task.
    @param payouts What each gets back (reward plus stake for winners, 0 for losers).
    @param won Whether each was in the revealed consensus.
    @param callback_data Result for the requester contract.
    """
    assert msg.sender == self.onchain_path, "poco: caller not Contributions"
    deal_id: bytes32 = self._check_deal(deal)
    position: uint256 = self._check_open_task(deal_id, deal, index)
    assert block.timestamp < deal.final_deadline, "poco: final deadline passed"
    held: uint256 = deal.worker_stake * len(workers)
    self.held_stakes -= held
    self.task_bits[deal_id][position // 256] |= 1 << (position % 256)
    task_id: bytes32 = keccak256(abi_encode(deal_id, index))
    paid: uint256 = 0
    scored: bool = len(workers) > 1 and deal.worker_stake >= score_stake_floor
    for i: uint256 in range(len(workers), bound=MAX_CONTRIBUTORS):
        worker: address = workers[i]
        escrow._credit(worker, payouts[i])
        paid += payouts[i]
        if won[i]:
            if scored:
                self.score[worker] += 1
            log WorkerRewarded(task_id=task_id, worker=worker, amount=payouts[i])
        else:
            self.score[worker] = 0
            log WorkerPenalized(task_id=task_id, worker=worker, seized=deal.worker_stake)
    escrow._credit(deal.app_owner, deal.app_price)
    escrow._credit(deal.dataset_owner, deal.dataset_price)
    # conservation: what the task held minus what the workers got goes to the scheduler
    escrow._credit(deal.scheduler, deal.workerpool_price + deal.scheduler_stake + held - paid)
    log TaskFinalized(task_id=task_id, deal_id=deal_id, index=index, digest=digest)
    if deal.callback != empty(address):
        assert keccak256(callback_data) == digest, "poco: callback data not result"
        self._callback(deal.callback, task_id, callback_data)


@external
def set_onchain_path(contributions: address):
    """
    @notice Links the Contributions contract, once (deployer only).
    @param contributions Its address.
    """
    assert msg.sender == self.deployer, "poco: caller is not the deployer"
    assert self.onchain_path == empty(address), "poco: already linked"
    self.onchain_path = contributions


# ---------------------------------------------------------------- claims

@external
def claim(deal: Deal, indices: DynArray[uint256, MAX_CLAIM]):
    """
    @notice Refunds unfinished tasks after the final deadline (anyone may call): the
            requester gets the task price and the scheduler's stake; on-chain worker
            stakes go back to their workers, but for those rejected after `reopen`.
    @param deal The deal.
    @param indices Task indices to claim, ascending.
    """
    deal_id: bytes32 = self._check_deal(deal)
    assert block.timestamp >= deal.final_deadline, "poco: final deadline not reached"
    assert len(indices) > 0, "poco: nothing to claim"
    refund: uint256 = 0
    for index: uint256 in indices:
        position: uint256 = self._check_open_task(deal_id, deal, index)
        word: uint256 = self.task_bits[deal_id][position // 256]
        self.task_bits[deal_id][position // 256] = word | (1 << (position % 256))
        task_id: bytes32 = keccak256(abi_encode(deal_id, index))
        if (word >> (position % 256)) & 2 == 2:
            # on-chain contributors are not at fault and get their stakes back, except those
            # rejected for not revealing: theirs compensate the requester
            workers: DynArray[address, 16] = []
            held: uint256 = 0
            workers, held = staticcall IContributions(self.onchain_path).claim_refunds(task_id)
            for worker: address in workers:
                escrow._credit(worker, deal.worker_stake)
            self.held_stakes -= held * deal.worker_stake
            refund += (held - len(workers)) * deal.worker_stake
        refund += deal.app_price + deal.dataset_price + deal.workerpool_price + deal.scheduler_stake
        log TaskClaimed(task_id=task_id, deal_id=deal_id, index=index)
    escrow._credit(deal.requester, refund)


# ---------------------------------------------------------------- views

@external
@view
def deal_exists(deal_id: bytes32) -> bool:
    """
    @notice Whether a deal with this id was made.
    @param deal_id keccak256(abi_encode(deal)).
    @return True if it exists.
    """
    return self.task_bits[deal_id][0] & 1 == 1


@external
@view
def is_settled(deal_id: bytes32, index: uint256) -> bool:
    """
    @notice Whether a task was finalized or claimed.
    @param deal_id The deal id.
    @param index Task index in the deal.
    @return True once settled.
    """
    position: uint256 = 2 * (index + 1)
    return (self.task_bits[deal_id][position // 256] >> (position % 256)) & 1 == 1


# ---------------------------------------------------------------- internal

@internal
@view
def _check_deal(deal: Deal) -> bytes32:
    deal_id: bytes32 = keccak256(abi_encode(deal))
    assert self.task_bits[deal_id][0] & 1 == 1, "poco: unknown deal"
    return deal_id


@internal
@view
def _check_open_task(deal_id: bytes32, deal: Deal, index: uint256) -> uint256:
    """@dev Returns the task's bit position, reverting when out of range or settled."""
    assert index < deal.volume, "poco: task index out of range"
    position: uint256 = 2 * (index + 1)
    assert (self.task_bits[deal_id][position // 256] >> (position % 256)) & 1 == 0, "poco: task already settled"
    return position


@internal
@view
def _weight(worker: address) -> uint256:
    return min(max(self.score[worker] // 3, 3) - 1, MAX_WEIGHT)


@internal
@view
def _check_contribution_sig(worker: address, task_id: bytes32, result_hash: bytes32, result_seal: bytes32, r: bytes32, vs: bytes32):
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(keccak256(abi_encode(CONTRIBUTION_TYPEHASH, task_id, result_hash, result_seal)))
    signer: address = ecdsa._try_recover_r_vs(digest, convert(r, uint256), convert(vs, uint256))
    assert signer == worker and signer != empty(address), "poco: bad contribution signature"


@internal
def _callback(target: address, task_id: bytes32, data: Bytes[MAX_CALLBACK_DATA]):
    """@dev Gas-capped and failure-isolated: a reverting or gas-eating receiver never blocks settlement."""
    # EIP-150 forwards at most 63/64 of what is left: make sure the cap really reaches the callee
    assert msg.gas >= CALLBACK_GAS * 64 // 63 + 20000, "poco: gas too low for callback"
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(target, abi_encode(task_id, data, method_id=method_id("receiveResult(bytes32,bytes)")), max_outsize=32, gas=CALLBACK_GAS, revert_on_failure=False)
    if not success:
        log CallbackFailed(task_id=task_id, callback=target)
