"""What redirect mode says at start about the parts of a tree it cannot carry out."""

from __future__ import annotations

from pathlib import Path

from engine.servable import unservable
from routing_trees.treeset import load_directory

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234"]
timezone: Europe/Brussels
routes:
  - name: desk
    when: {time: "08:00-18:00"}
    do:
      forward: "+3225550001"
      on_busy: {reject: 486}
      on_no_answer:
        forward: "+3225550002"
        on_unreachable: {reject: 603}
  - name: closed
    do: {reject: 480}
"""


def test_a_reject_in_a_failover_branch_is_named_a_top_level_reject_is_not(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(TREE)
    (tree,) = load_directory(tmp_path).trees
    notices = [str(n) for n in unservable(tree, "redirect")]
    file = str(tmp_path / "acme.yaml")
    follows = "(the upstream follows the 302's Contacts and ends the call itself)"
    assert notices == [
        f"{file}:10:17: rule 'desk' (on_busy): reject 486 in a failover branch is not sent in "
        f"redirect mode {follows}",
        f"{file}:13:26: rule 'desk' (on_no_answer.on_unreachable): reject 603 in a failover "
        f"branch is not sent in redirect mode {follows}",
    ]
    assert list(unservable(tree, "b2bua")) == []
