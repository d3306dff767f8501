"""Research tools: evaluation, gate training, dataset synthesis.

Imports edge_agent and shared_protocol, never cloud_service; requests never import it.
"""
