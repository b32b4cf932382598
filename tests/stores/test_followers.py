from clarion.runtime import Runtime
from clarion.testing import users
from clarion.types import UserId

CREATOR = UserId("creator")


async def test_followers_add_is_idempotent_and_counted(runtime: Runtime) -> None:
    store = runtime.stores.followers
    assert await store.add(CREATOR, users(5)) == 5
    assert await store.add(CREATOR, users(7)) == 2
    assert await store.count(CREATOR) == 7
    assert await store.remove(CREATOR, [*users(3), UserId("stranger")]) == 3
    assert await store.count(CREATOR) == 4
    assert await store.count(UserId("nobody")) == 0


async def test_followers_page_by_keyset_in_id_order(runtime: Runtime) -> None:
    store = runtime.stores.followers
    await store.add(CREATOR, list(reversed(users(25))))
    seen: list[UserId] = []
    after = None
    while page := await store.page(CREATOR, after=after, limit=10):
        seen += page
        after = page[-1]
    assert seen == users(25)
