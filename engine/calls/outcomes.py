"""Dynamic routing outcomes: what a failed outgoing leg means, and what the caller gets.

routing-trees.md: busy is 486 or 600; no answer is the node's ``timeout``
expiring or 408/480; unreachable is 404/5xx, a transport failure, or a site
that its health checks mark down; overflow is ``max_calls`` concurrent calls
already on the destination. Any other final response (603 Decline, 403 ...)
is the callee's own answer and goes back to the caller as it came. An
outcome with no handler in the tree ends the call with the matching final
response towards the caller (:func:`final_for`).
"""

from __future__ import annotations

__all__ = ["BUSY", "NO_ANSWER", "OUTCOMES", "OVERFLOW", "UNREACHABLE", "classify", "final_for"]

BUSY, NO_ANSWER, UNREACHABLE, OVERFLOW = "busy", "no_answer", "unreachable", "overflow"
OUTCOMES = (BUSY, NO_ANSWER, UNREACHABLE, OVERFLOW)


def classify(status: int) -> str | None:
    """The outcome a final response to our INVITE stands for, or None."""
    if status in (486, 600):
        return BUSY
    if status in (408, 480):
        return NO_ANSWER
    if status == 404 or 500 <= status < 600:
        return UNREACHABLE
    return None


def final_for(outcome: str, status: int | None) -> tuple[int, str | None]:
    """The response that ends the call when the tree does not handle ``outcome``.

    Busy keeps the callee's own code (486 or 600); no answer is 480 (a 408
    would speak of our transaction, not the callee); unreachable is 404 when
    the number does not exist and 503 otherwise (the caller may retry
    elsewhere); overflow is 486, as the destination is busy with calls.
    """
    if outcome == BUSY:
        return (status if status in (486, 600) else 486), None
    if outcome == NO_ANSWER:
        return 480, None
    if outcome == UNREACHABLE:
        return (404, None) if status == 404 else (503, "Destination Unreachable")
    return 486, "Destination At Capacity"
