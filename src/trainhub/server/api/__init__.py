"""JSON routes of the HUB v1 API, one module per resource."""
