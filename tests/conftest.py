from db_servers import *  # noqa: F403

# -- analyzer helpers: real git repos with real Alembic projects (see gitutil.py) --------
from gitutil import (  # noqa: F401
    empty_alembic_repo,
    repo_with_linear_history,
    repo_with_merged_feature_branches,
    repo_with_two_feature_branches,
)
