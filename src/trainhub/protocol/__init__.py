"""Wire shapes of the HUB v1 protocol and trainhub's additions, shared by client and server.

Imports pydantic and the standard library only (tests/unit/test_layering.py checks it).
"""
