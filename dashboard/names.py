"""Long run names, shortened in the middle rather than at the end: a sweep's runs share their
start ("parent_run_test_params_test_3_4", "..._3_3") and differ at the end, which stays in sight.
Pages cut them with CSS (the `cut_middle` filter, dashboard/templatetags/runtree.py); charts,
whose labels plotly cannot cut, with `short_name`."""

import unicodedata

TAIL_CHARS = 8
TAIL_MAX_CHARS = 14  # ... or up to this many, to begin the tail with a whole word
CHART_LABEL_CHARS = 28


def head_and_tail(label: str) -> tuple[str, str]:
    """`label` as (head, tail), the part that may give way and the part kept. The tail is the
    last TAIL_CHARS characters, or a few more so that it begins with a whole word ("default_4",
    not "efault_4"), or one fewer so that it does not begin with a separator; a combining mark
    stays with the character before it. A label short enough to be read whole has no tail."""
    if len(label) <= TAIL_MAX_CHARS + 4:
        return label, ""
    cut = len(label) - TAIL_CHARS
    word_start = cut
    while word_start > len(label) - TAIL_MAX_CHARS and _inside_word(label, word_start):
        word_start -= 1
    if not _inside_word(label, word_start):
        cut = word_start
    if label[cut] in "_-. ":
        cut += 1  # "depth-3" rather than "_depth-3": the separator stays with the head
    while cut > 1 and (unicodedata.combining(label[cut]) or label[cut] in "\u200d\ufe0f"):
        cut -= 1
    return label[:cut], label[cut:]


def short_name(label: str, chars: int = CHART_LABEL_CHARS) -> str:
    """`label` in at most about `chars` characters: its start, an ellipsis, its tail."""
    if len(label) <= chars:
        return label
    head, tail = head_and_tail(label)
    return head[: max(1, chars - len(tail) - 1)] + "…" + tail


def _inside_word(label: str, at: int) -> bool:
    return label[at - 1].isalnum() and label[at].isalnum()
