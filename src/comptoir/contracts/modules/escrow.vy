# pragma version ~=0.4.3
"""
@title Escrow of the payment token
@custom:contract-name escrow
@license AGPL-3.0-only
@notice Holds every token the protocol manages. `balance_of` is an account's free
        balance; tokens committed to deals (requester payments, scheduler stakes) and
        to on-chain contributions (worker stakes) are held by the deal and task records
        of the `poco` module, not by accounts. Invariant, tested by property tests:
        token.balanceOf(self) == sum(balance_of) + sum(deal escrows) + sum(held worker stakes).
        An account may `lock` its free balance until a time: it then cannot leave the
        account (withdrawal, paying for a deal) before that time, but stakes can still be
        seized from it. Workers lock past the final deadline of the deals they work on, so
        a liar cannot empty its account before the fast path settles and seizes its stake.
"""

# @dev Sections: imports, events, storage, constructor, external, internal.

from ethereum.ercs import IERC20


interface IPermit:
    def permit(owner: address, spender: address, amount: uint256, deadline: uint256, v: uint8, r: bytes32, s: bytes32): nonpayable



event Deposit:
    account: indexed(address)
    payer: indexed(address)
    amount: uint256


event Withdraw:
    account: indexed(address)
    recipient: indexed(address)
    amount: uint256


MAX_LOCK: constant(uint256) = 31536000  # a year: nobody locks its funds for good by mistake

token: public(immutable(IERC20))
balance_of: public(HashMap[address, uint256])
locked_until: public(HashMap[address, uint256])


@deploy
def __init__(token_: IERC20):
    token = token_


@external
def deposit(amount: uint256):
    """
    @notice Moves `amount` tokens from the caller (approval needed) to its free balance.
    @param amount Token units to deposit.
    """
    self._deposit_for(msg.sender, amount)


@external
def deposit_for(account: address, amount: uint256):
    """
    @notice Moves `amount` tokens from the caller to the free balance of `account`.
    @param account Beneficiary of the deposit.
    @param amount Token units to deposit.
    """
    assert account != empty(address), "escrow: zero account"
    self._deposit_for(account, amount)


@external
def deposit_with_permit(amount: uint256, deadline: uint256, v: uint8, r: bytes32, s: bytes32):
    """
    @notice Deposits in one transaction using an EIP-2612 permit signed by the caller.
    @param amount Token units to deposit.
    @param deadline Permit deadline (unix seconds).
    @param v Signature recovery id.
    @param r Signature r.
    @param s Signature s.
    """
    extcall IPermit(token.address).permit(msg.sender, self, amount, deadline, v, r, s)
    self._deposit_for(msg.sender, amount)


@external
def withdraw(amount: uint256):
    """
    @notice Sends `amount` of the caller's free balance back to the caller.
    @param amount Token units to withdraw.
    """
    self._withdraw_to(msg.sender, amount)


@external
def withdraw_to(recipient: address, amount: uint256):
    """
    @notice Sends `amount` of the caller's free balance to `recipient`.
    @param recipient Address receiving the tokens.
    @param amount Token units to withdraw.
    """
    assert recipient != empty(address), "escrow: zero recipient"
    self._withdraw_to(recipient, amount)


@external
def lock(until: uint256):
    """
    @notice Keeps the caller's free balance in the escrow until `until` (never shortens an
            earlier lock): no withdrawal and no payment for a deal before then, while
            stakes of wrong contributions can still be seized from it.
    @param until Unix time, at most a year from now.
    """
    assert until <= block.timestamp + MAX_LOCK, "escrow: lock too long"
    self.locked_until[msg.sender] = max(self.locked_until[msg.sender], until)


@internal
def _deposit_for(account: address, amount: uint256):
    assert amount > 0, "escrow: zero amount"
    self.balance_of[account] += amount
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "escrow: transfer failed"
    log Deposit(account=account, payer=msg.sender, amount=amount)


@internal
def _withdraw_to(recipient: address, amount: uint256):
    assert amount > 0, "escrow: zero amount"
    self._debit(msg.sender, amount, "escrow: insufficient balance", True)
    assert extcall token.transfer(recipient, amount, default_return_value=True), "escrow: transfer failed"
    log Withdraw(account=msg.sender, recipient=recipient, amount=amount)


@internal
def _debit(account: address, amount: uint256, reason: String[64], spend: bool):
    """@dev Takes `amount` from a free balance, reverting with `reason` when short; a
    `spend` (paying for a deal) also needs the balance unlocked."""
    assert not spend or block.timestamp >= self.locked_until[account], "escrow: balance locked"
    assert self.balance_of[account] >= amount, reason
    self.balance_of[account] -= amount


@internal
def _credit(account: address, amount: uint256):
    if amount != 0:
        self.balance_of[account] += amount


@internal
def _seize(account: address, amount: uint256) -> uint256:
    """@dev Takes up to `amount` from a free balance; returns what was taken (never reverts)."""
    taken: uint256 = min(amount, self.balance_of[account])
    if taken != 0:
        self.balance_of[account] -= taken
    return taken
