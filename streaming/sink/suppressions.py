"""Reading the active pattern suppressions (the `suppressions` view of sql/013) for the consumer."""

from __future__ import annotations

import psycopg

from streaming.suppressions import Suppression


def load_suppressions(conn: psycopg.Connection) -> list[Suppression]:
    """Every active pattern suppression, one per (tenant, service, template): the view already
    keeps the longest one and leaves out those that ended."""
    rows = conn.execute(
        "SELECT tenant, service, pattern_template, until, feedback_id FROM suppressions"
    ).fetchall()
    return [Suppression(str(t), str(s), str(p), u, int(f)) for t, s, p, u, f in rows]
