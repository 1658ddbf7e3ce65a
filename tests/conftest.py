from db_servers import *  # noqa: F403
