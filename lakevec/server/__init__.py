"""``lakevec run``: Chroma's REST API over a lakevec root (needs the ``server`` extra).

:mod:`~lakevec.server.config` holds what is served and its limits, :mod:`~lakevec.server.wire`
the codec and the guard in front of the routes, :mod:`~lakevec.server.app` the routes.
"""

from lakevec.server.app import create_app, serve
from lakevec.server.config import ServerConfig, token_from_environment

__all__ = ["ServerConfig", "create_app", "serve", "token_from_environment"]
