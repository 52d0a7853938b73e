"""The trainhub server: HUB v1 REST API, signed downloads and (later) the dashboard.

Installed with the `server` extra; never imported by the client (see DEVELOPERS.md).
"""
