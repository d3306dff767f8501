"""The edge's HTTP routes, one router per resource; `edge_agent.app` mounts them."""
