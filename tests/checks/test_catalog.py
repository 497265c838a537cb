"""The catalogs as a whole: every blank has wrong and correct versions, each mutant names its own mistake."""

from __future__ import annotations

from catalog import GENERIC_MESSAGES, all_alternatives, all_mutants, load_catalogs

from autograder.checks import known_blanks
from autograder.checks.declared import CHECK_MODULES


def test_there_is_one_catalog_per_assignment_with_only_its_own_blanks():
    catalogs = load_catalogs()
    assert [c.assignment for c in catalogs] == list(CHECK_MODULES)
    for catalog in catalogs:
        blanks = {entry.blank for entry in [*catalog.mutants, *catalog.alternatives]}
        foreign = {blank for blank in blanks if known_blanks().get(blank) != catalog.assignment}
        assert not foreign, f"the {catalog.assignment} catalog has entries for other assignments' blanks: {sorted(foreign)}"


def test_mutants_are_many_and_cover_every_blank():
    mutants = all_mutants()
    assert len(mutants) >= 40, f"only {len(mutants)} mutants"
    for blank in known_blanks():
        count = sum(m.blank == blank for m in mutants)
        assert count >= 2, f"only {count} mutant(s) for {blank}"
    unknown = {m.blank for m in mutants} - set(known_blanks())
    assert not unknown, f"mutants for blanks that have no checks: {sorted(unknown)}"


def test_every_mutant_expects_its_own_named_mistake_not_a_generic_failure():
    for m in all_mutants():
        assert len(m.expect) >= 8, f"{m.id}: {m.expect!r} is too short to name a mistake"
        generic = [words for words in GENERIC_MESSAGES if words in m.expect]
        assert not generic, f"{m.id} expects the generic {m.expect!r}: expect the words that name its mistake"


def test_alternatives_are_many_and_cover_every_blank():
    alternatives = all_alternatives()
    assert len(alternatives) >= 18, f"only {len(alternatives)} alternatives"
    missing = set(known_blanks()) - {a.blank for a in alternatives}
    assert not missing, f"no alternative for {sorted(missing)}"


def test_ids_are_unique():
    ids = [entry.id for entry in [*all_mutants(), *all_alternatives()]]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"ids used twice: {duplicates}"
