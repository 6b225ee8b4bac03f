"""The machine-learning side of Crop AI: model contracts, architectures, training,
the registry of versions and the batched predictor. Pure torch; no Prefect."""
