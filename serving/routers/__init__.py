"""HTTP routers: TF Serving's REST API, the raw-id web API, and operations endpoints."""
