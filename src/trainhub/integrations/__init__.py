"""Training-framework integrations: ultralytics, lightning and transformers (docs/integrations.md).

Each module imports its framework, so import the one you use; none is imported here. They use
the public client API only (`trainhub.HUBTrainingSession`).
"""
