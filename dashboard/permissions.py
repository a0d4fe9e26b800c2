"""Whether the viewer may change what the pages show: controls that write are drawn only for
writers (tracker/web/auth.py refuses the writes themselves, whatever a page draws)."""

from tracker.web.auth import WRITER, auth_required, role_of


def can_write(request) -> bool:
    """True with RUNTREE_AUTH=off (everything is open), else for a writer (one query: groups)."""
    return not auth_required() or role_of(request.user) == WRITER
