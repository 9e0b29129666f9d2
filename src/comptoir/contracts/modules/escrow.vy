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


token: public(immutable(IERC20))
balance_of: public(HashMap[address, uint256])


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


@internal
def _deposit_for(account: address, amount: uint256):
    assert amount > 0, "escrow: zero amount"
    self.balance_of[account] += amount
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "escrow: transfer failed"
    log Deposit(account=account, payer=msg.sender, amount=amount)


@internal
def _withdraw_to(recipient: address, amount: uint256):
    assert amount > 0, "escrow: zero amount"
    assert self.balance_of[msg.sender] >= amount, "escrow: insufficient balance"
    self.balance_of[msg.sender] -= amount
    assert extcall token.transfer(recipient, amount, default_return_value=True), "escrow: transfer failed"
    log Withdraw(account=msg.sender, recipient=recipient, amount=amount)


@internal
def _debit(account: address, amount: uint256, reason: String[64]):
    """@dev Takes `amount` from a free balance, reverting with `reason` when short."""
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
