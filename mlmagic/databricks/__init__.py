"""Azure Databricks: everything mlmagic does with a Databricks workspace, in one package.

- ``workspace.py``: the ``databricks`` tracking backend (the workspace's managed MLflow, and
  Unity Catalog's registry), with the notebook's own experiment as the default;
- ``sdk.py``: every use of MLflow's Databricks internals and the runtime's private parts,
  with the versions it was checked on.

Importing this package imports neither MLflow nor a Databricks library.
"""
