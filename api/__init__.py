"""The Crop AI HTTP API: users, auth, catalogue reads and on-demand analyses.

It validates, authorises and triggers; the work runs in Prefect deployments. The
process stays light: it never imports torch, dask or xarray (a test checks).
"""
