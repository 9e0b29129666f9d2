"""`ChainClient.contract_owner`, what a worker and the SDK read to check a callback
owner's key: the owner() of a real contract on anvil, at the latest block or at the
deal's, and nothing for an address that has no such function."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from comptoir import devnet as devnet_mod
from comptoir.chain.client import ChainClient, Transactor
from comptoir.chain.deploy import deploy_contract


def test_the_owner_of_a_callback_contract_is_read_at_a_block(
    chain: devnet_mod.Devnet, accounts: dict[str, LocalAccount], clients: dict[str, ChainClient]
) -> None:
    owner = accounts["requester"]
    before = clients["stranger"].block_number()
    receiver, block = deploy_contract(
        Transactor(chain.w3, owner), "CallbackReceiver", chain.deployment.hub, 0
    )
    reader = clients["stranger"]
    assert reader.contract_owner(receiver) == owner.address
    assert reader.contract_owner(receiver, block) == owner.address
    assert reader.contract_owner(receiver, before) is None  # no code yet at that block
    # a contract whose owner() is someone else's, and addresses without owner()
    wallet, _ = deploy_contract(
        Transactor(chain.w3, owner), "ERC1271Wallet", accounts["app_dev"].address
    )
    assert reader.contract_owner(wallet) == accounts["app_dev"].address
    assert reader.contract_owner(accounts["w1"].address) is None  # an EOA answers nothing
    assert reader.contract_owner(chain.deployment.hub) is None  # a contract without it
