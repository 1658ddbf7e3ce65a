"""Every command's result rendered, in one place: text for people, JSON for machines,
markdown for a pull-request comment. Pure: strings and dicts from the values the
commands return; nothing here prints, reads or imports the commands' modules.

- ``analysis``: ``plan`` and ``check``
- ``move``: ``switch``, ``sync`` and ``merge-heads``
- ``status``: ``status``, with the last move's failure
- ``snapshots``: ``snapshot list | save | restore | prune``
- ``verify``: ``verify``, ``verify --drift``, ``verify --models``
"""
