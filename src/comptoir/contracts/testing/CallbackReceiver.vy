# pragma version ~=0.4.3
"""
@title Test and example requester contract (EIP-1154 receiver)
@notice Records the last result it received; `mode` makes it revert or burn all its gas
        so tests can show a bad receiver never blocks settlement.
"""

MODE_RECORD: constant(uint8) = 0
MODE_REVERT: constant(uint8) = 1
MODE_BURN_GAS: constant(uint8) = 2

hub: public(address)
owner: public(address)
mode: public(uint8)
last_task: public(bytes32)
last_result: public(Bytes[1024])
received: public(uint256)


@deploy
def __init__(hub_: address, mode_: uint8):
    """
    @notice A receiver that accepts results from `hub_` only, owned by its deployer
            (whose key a requester may seal the result to).
    @param hub_ The hub.
    @param mode_ 0 record, 1 revert, 2 burn all gas.
    """
    self.hub = hub_
    self.owner = msg.sender
    self.mode = mode_


@external
def receiveResult(task_id: bytes32, result: Bytes[1024]):
    """
    @notice EIP-1154 callback.
    @param task_id The task.
    @param result The result bytes.
    """
    assert msg.sender == self.hub, "receiver: caller is not the hub"
    if self.mode == MODE_REVERT:
        raise "receiver: refusing"
    if self.mode == MODE_BURN_GAS:
        for i: uint256 in range(1000000):
            self.received += 1
    self.last_task = task_id
    self.last_result = result
    self.received += 1
