"""IdentityMemo: values found again by the identity of shared objects, bounded."""

from webhook.rules.identity_memo import IdentityMemo


def test_a_value_is_found_by_the_same_object_and_values_only():
    memo: IdentityMemo[str] = IdentityMemo()
    a, b = {"size": 1}, {"size": 1}  # equal, not the same object
    assert memo.put((a,), (2,), "made") == "made"
    assert memo.get((a,), (2,)) == "made"
    assert memo.get((b,), (2,)) is None
    assert memo.get((a,), (3,)) is None


def test_the_objects_are_kept_alive_and_a_full_memo_starts_again():
    memo: IdentityMemo[int] = IdentityMemo(max_entries=2)
    memo.put((object(),), (), 1)  # kept: its id is not reused while the entry lives
    kept = object()
    memo.put((kept,), (), 2)
    assert memo.get((kept,)) == 2
    memo.put((object(),), (), 3)  # full: emptied first
    assert memo.get((kept,)) is None
