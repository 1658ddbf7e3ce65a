"""Bring the database along with the checkout: one pipeline for every move.

A move is asked for as a ``MoveRequest`` (``request``: the target, the snapshot mode,
rehearse, terminate, the hook's refs), then

- *gather* (``gather``, ``applied``): git's state, the database's heads and owner, the
  scripts that applied it and their texts, the snapshots held;
- *decide*: ``lifecycle`` (pure) says what to restore, save, keep and drop;
- *execute* (``execute``, ``steps``, ``rehearse``, ``rollback``): one journaled
  transaction, save, steps, checkout, restore, and everything put back if one fails;
- *result*: a ``MoveResult`` (``result``), rendered by ``branchmig.reports.move``.

``commands`` holds the entries: ``sync`` (what the hooks run) and ``switch`` (checkout
included). ``restore`` is ``snapshot restore`` through the same stages: a
``RestoreRequest``, ``lifecycle.decide_restore``, the same journal and recovery, a
``RestoreResult``. Nothing is imported here, so a module that needs one stage loads that
stage.
"""
