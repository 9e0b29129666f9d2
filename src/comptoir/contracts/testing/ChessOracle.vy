# pragma version ~=0.4.3
"""
@title Chess oracle: a requester contract asking "checkmate or stalemate?" off-chain
@notice Judging a chess position costs far too much gas on-chain, so the contract buys
        the computation: `ask(fen)` presigns a request order (the contract is the
        requester and pays from its escrow balance), anyone matches it with app and
        workerpool orders, workers replicate the computation, and the hub delivers the
        agreed answer to `receiveResult` (EIP-1154). Used by examples/chess_callback.
@dev The app's callback data is abi_encode(verdict, sha256(fen)): 64 bytes.
"""

VERDICT_UNKNOWN: constant(uint256) = 0
VERDICT_CHECKMATE: constant(uint256) = 1
VERDICT_STALEMATE: constant(uint256) = 2
VERDICT_NEITHER: constant(uint256) = 3
VERDICT_INVALID: constant(uint256) = 4
MAX_FEN: constant(uint256) = 100


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


interface IHub:
    def presign_request_order(order: RequestOrder): nonpayable


event Asked:
    position: indexed(bytes32)
    fen: String[MAX_FEN]
    salt: bytes32


event Answered:
    position: indexed(bytes32)
    verdict: uint256
    task_id: bytes32


hub: public(address)
owner: public(address)
app: public(uint256)
app_max_price: public(uint256)
workerpool_max_price: public(uint256)
category: public(uint256)
trust: public(uint256)
verdicts: public(HashMap[bytes32, uint256])  # sha256(fen) -> verdict
questions: public(uint256)


@deploy
def __init__(hub_: address, app_: uint256, app_max_price_: uint256, workerpool_max_price_: uint256, category_: uint256, trust_: uint256):
    """
    @notice An oracle buying runs of chess app `app_` through `hub_`.
    @param hub_ The hub (the only caller of receiveResult).
    @param app_ The chess app's asset id.
    @param app_max_price_ Most paid to the app owner per question.
    @param workerpool_max_price_ Most paid to the workerpool per question.
    @param category_ Category (deadline) of the requests.
    @param trust_ Trust level of the requests (replication).
    """
    self.hub = hub_
    self.owner = msg.sender
    self.app = app_
    self.app_max_price = app_max_price_
    self.workerpool_max_price = workerpool_max_price_
    self.category = category_
    self.trust = trust_


@external
def ask(fen: String[MAX_FEN]) -> bytes32:
    """
    @notice Asks whether `fen` is checkmate, stalemate or neither; the answer arrives
            through receiveResult once a deal is matched and its task settled.
    @param fen The position in Forsyth-Edwards notation.
    @return The salt of the presigned request order (with the contract's settings, it
            rebuilds the order off-chain).
    """
    self.questions += 1
    salt: bytes32 = keccak256(abi_encode(sha256(fen), self.questions))
    order: RequestOrder = RequestOrder(
        app=self.app,
        app_max_price=self.app_max_price,
        dataset=0,
        dataset_max_price=0,
        workerpool=0,
        workerpool_max_price=self.workerpool_max_price,
        requester=self,
        volume=1,
        tag=empty(bytes32),
        category=self.category,
        trust=self.trust,
        min_worker_stake=0,
        beneficiary=self,
        callback=self,
        params=fen,
        salt=salt,
    )
    extcall IHub(self.hub).presign_request_order(order)
    log Asked(position=sha256(fen), fen=fen, salt=salt)
    return salt


@external
def receiveResult(task_id: bytes32, result: Bytes[1024]):
    """
    @notice EIP-1154 callback: records the verdict the workers agreed on.
    @param task_id The settled task.
    @param result abi_encode(verdict, sha256(fen)).
    """
    assert msg.sender == self.hub, "chess: caller is not the hub"
    assert len(result) == 64, "chess: malformed answer"
    verdict: uint256 = extract32(result, 0, output_type=uint256)
    position: bytes32 = extract32(result, 32)
    assert verdict >= VERDICT_CHECKMATE and verdict <= VERDICT_INVALID, "chess: unknown verdict"
    self.verdicts[position] = verdict
    log Answered(position=position, verdict=verdict, task_id=task_id)


@external
@view
def verdict(fen: String[MAX_FEN]) -> uint256:
    """
    @notice 0 not answered yet, 1 checkmate, 2 stalemate, 3 neither, 4 invalid position.
    @param fen The position asked about.
    @return The verdict.
    """
    return self.verdicts[sha256(fen)]
