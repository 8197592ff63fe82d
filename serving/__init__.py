"""The model server: TF Serving's REST API and a raw-id web API over the model repository.

Run it with `python -m pipeline serve --config configs/default.yaml` (or `make serve`).
"""
