"""The privacy page: sign-in sessions and what the page shows, apart from its routes
(``edge_agent.routers.page``), templates (``edge_agent/templates``) and assets
(``edge_agent/static``)."""
