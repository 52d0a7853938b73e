"""The trainhub client: talk to a hub (api.py), find credentials, retry and report errors."""
