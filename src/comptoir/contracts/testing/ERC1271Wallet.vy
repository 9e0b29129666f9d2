# pragma version ~=0.4.3
"""
@title Test smart-contract wallet (ERC-1271)
@notice Accepts a signature when its EOA owner signed the hash.
"""

from snekmate.utils import ecdsa

initializes: ecdsa

owner: public(address)


@deploy
def __init__(owner_: address):
    """
    @notice A wallet controlled by `owner_`.
    @param owner_ The EOA whose signatures the wallet accepts.
    """
    ecdsa.__init__()
    self.owner = owner_


@external
@view
def isValidSignature(hash: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice ERC-1271 check.
    @param hash The signed digest.
    @param signature The owner's ECDSA signature.
    @return The ERC-1271 magic value when valid.
    """
    if ecdsa._recover_sig(hash, signature) == self.owner:
        return 0x1626ba7e
    return 0xffffffff


@external
def call(target: address, data: Bytes[4096]) -> Bytes[32]:
    """
    @notice Lets the owner act through the wallet (approve, deposit...).
    @param target Contract to call.
    @param data Calldata.
    @return The first 32 bytes returned.
    """
    assert msg.sender == self.owner, "wallet: caller is not the owner"
    return raw_call(target, data, max_outsize=32)
