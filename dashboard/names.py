"""Long run names, shortened in the middle rather than at the end: a sweep's runs share their
start ("parent_run_test_params_test_3_4", "..._3_3") and differ at the end, which stays in sight.
Where names shown together differ before their end ("bert-lr3e-5-bs32-squad", "bert-lr5e-5-..."),
the kept end reaches back to where they differ. Pages cut them with CSS (the `cut_middle` filter,
dashboard/templatetags/runtree.py); charts, whose labels plotly cannot cut, with `short_name`."""

import unicodedata
from collections.abc import Sequence

TAIL_CHARS = 8
TAIL_MAX_CHARS = 14  # ... or up to this many, to begin the tail with a whole word
# ... or up to this many, to keep in sight where a name differs from the others shown with it:
# about what the tree's name column holds on a phone (12.5rem).
TAIL_DIFFERING_MAX_CHARS = 24
HEAD_MIN_CHARS = 4
MIDDLE_MAX_CHARS = 12  # the word kept in the middle of a name that differs far from its end
CHART_LABEL_CHARS = 28


def head_and_tail(label: str, differs_at: int | None = None) -> tuple[str, str]:
    """`label` as (head, tail), the part that may give way and the part kept. The tail is the
    last TAIL_CHARS characters, or a few more so that it begins with a whole word ("default_4",
    not "efault_4"), or one fewer so that it does not begin with a separator; a combining mark
    stays with the character before it. `differs_at` (see `differing_starts`) earlier than that
    and within TAIL_DIFFERING_MAX_CHARS of the end moves the tail's start back to its word. A
    label short enough to be read whole has no tail."""
    if len(label) <= TAIL_MAX_CHARS + 4:
        return label, ""
    cut = _word_start(label, len(label) - TAIL_CHARS, floor=len(label) - TAIL_MAX_CHARS)
    if differs_at is not None and differs_at < cut:
        # Names that differ in their first few characters show it in the head.
        floor = max(len(label) - TAIL_DIFFERING_MAX_CHARS, HEAD_MIN_CHARS)
        if differs_at >= floor:
            cut = _word_start(label, differs_at, floor=floor)
    if label[cut] in "_-. ":
        cut += 1  # "depth-3" rather than "_depth-3": the separator stays with the head
    cut = _whole_character(label, cut)
    return label[:cut], label[cut:]


def cut_parts(label: str, differs_at: int | None = None) -> tuple[str, ...]:
    """`label` as the parts a `.cut-middle` box draws, heads (that may give way) and tails (kept)
    in turn: (head, tail) as `head_and_tail` cuts it, or, where `label` differs from the names
    shown with it too far from its end for the tail to reach back (`differs_at` still in the
    head), (head, middle, gap, tail): the word where it differs is kept too, between two parts
    that give way ("customer-ch…v1-wee…pipeline")."""
    head, tail = head_and_tail(label, differs_at)
    if not tail or differs_at is None or not HEAD_MIN_CHARS <= differs_at < len(head):
        return head, tail
    start = _word_start(label, differs_at, floor=HEAD_MIN_CHARS)
    if label[start] in "_-. ":
        start += 1
    if differs_at - start >= MIDDLE_MAX_CHARS:
        start = differs_at - 4  # a long word: the few characters before where it differs
    end = differs_at + 1
    while end < len(head) and label[end].isalnum() and end - start < MIDDLE_MAX_CHARS:
        end += 1
    start, end = _whole_character(label, start), _whole_character(label, end)
    if not HEAD_MIN_CHARS <= start < end < len(head):
        return head, tail  # no room for a gap: the usual two parts
    return label[:start], label[start:end], label[end : len(head)], tail


def tail_differs_early(label: str, tail: str, differs_at: int | None) -> bool:
    """Whether `label` differs from the names shown with it in the first half of its `tail` (the
    tail reached back to that word): a tail too wide for its box then keeps its start in sight
    ("lr3e-5-bs…"), where any other keeps its end ("…t_test_4"), so the part that tells the names
    apart is the part on screen."""
    start = len(label) - len(tail)
    return bool(tail) and differs_at is not None and start <= differs_at < start + len(tail) / 2


def short_name(label: str, chars: int = CHART_LABEL_CHARS) -> str:
    """`label` in at most about `chars` characters: its start, an ellipsis, its tail."""
    if len(label) <= chars:
        return label
    head, tail = head_and_tail(label)
    return head[: max(1, chars - len(tail) - 1)] + "…" + tail


def differing_starts(labels: Sequence[str]) -> list[int]:
    """For each of `labels` shown together, where it begins to differ from the most alike of the
    others: the length of the longest start it shares with any of them. Sorted, a label's most
    alike neighbour is next to it, so each pair of neighbours is compared once."""
    order = sorted(range(len(labels)), key=labels.__getitem__)
    shared = [_shared_start(labels[first], labels[second]) for first, second in zip(order, order[1:], strict=False)]
    starts = [0] * len(labels)
    for position, index in enumerate(order):
        starts[index] = max(shared[position - 1] if position else 0, shared[position] if position < len(shared) else 0)
    return starts


def _shared_start(first: str, second: str) -> int:
    """The length of the start two strings share, by halving (string comparisons run in C; a
    tree page compares hundreds of names)."""
    low, high = 0, min(len(first), len(second))
    while low < high:
        middle = (low + high + 1) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _word_start(label: str, at: int, *, floor: int) -> int:
    """`at`, or the start of the word it falls in when that is no earlier than `floor`."""
    start = at
    while start > floor and _inside_word(label, start):
        start -= 1
    return at if _inside_word(label, start) else start


def _whole_character(label: str, at: int) -> int:
    """`at`, moved back so that a combining mark (or a joiner) stays with the character before it."""
    while at > 1 and at < len(label) and (unicodedata.combining(label[at]) or label[at] in "\u200d\ufe0f"):
        at -= 1
    return at


def _inside_word(label: str, at: int) -> bool:
    return label[at - 1].isalnum() and label[at].isalnum()
