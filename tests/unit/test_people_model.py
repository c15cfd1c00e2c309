"""The suppression filter: a fixed size whatever the number of suppressions, never missing one, and
rarely flagging an id that is not suppressed (docs/DESIGN.md, "Suppressions")."""

from __future__ import annotations

from tracking.models.people import FILTER_BITS, PeopleLists, SuppressionFilter, suppression_hash


def test_the_filter_never_misses_a_suppressed_digest_and_keeps_its_size() -> None:
    digests = [suppression_hash(f"gone-{n}") for n in range(12_000)]
    flagged = SuppressionFilter().with_digests(digests)
    assert len(flagged.bits) == FILTER_BITS // 8 == 16 * 1024
    assert all(flagged.might_hold(digest) for digest in digests)


def test_at_12000_suppressions_under_one_id_in_a_hundred_is_flagged_wrongly() -> None:
    # (the people item used to reach 400 KB at about 12,000 suppressions)
    flagged = SuppressionFilter().with_digests(suppression_hash(f"gone-{n}") for n in range(12_000))
    wrong = sum(flagged.might_hold(suppression_hash(f"kept-{n}")) for n in range(20_000))
    assert wrong / 20_000 < 0.01


def test_a_flagged_id_is_confirmed_once_per_lists_and_only_a_confirmed_one_is_suppressed() -> None:
    asked: list[str] = []

    def confirm(digest: str) -> bool:
        asked.append(digest)
        return digest == suppression_hash("gone")

    flagged = SuppressionFilter().with_digests([suppression_hash("gone"), suppression_hash("lifted")])
    people = PeopleLists(filter=flagged, confirm=confirm)
    assert people.suppresses(None, "gone")
    assert not people.suppresses("lifted")
    assert not people.suppresses("never-seen")  # not flagged: nothing read
    assert people.suppresses("gone")  # asked again: remembered
    assert not people.suppresses("lifted")
    assert asked == [suppression_hash("gone"), suppression_hash("lifted")]


def test_without_a_way_to_confirm_a_flagged_id_counts_as_suppressed() -> None:
    people = PeopleLists(filter=SuppressionFilter().with_digests([suppression_hash("gone")]))
    assert people.suppresses("gone")
    assert not PeopleLists().suppresses("gone")
