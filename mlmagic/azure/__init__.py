"""Azure Machine Learning: everything mlmagic does with a workspace, in one package.

- ``workspace.py``: the workspace and sign-in, and the ``azureml`` tracking backend;
- ``online.py``, ``kubernetes.py``: the online-endpoint deploy targets (SDK v2);
- ``aci.py``, ``aks.py`` (sharing ``webservice.py``): the legacy SDK v1 web services;
- ``jobs.py``: command jobs on a compute cluster (the ``JobRunner`` of ``%aml_submit``);
- ``init_script.py``: the Azure Databricks cluster init script;
- ``sdk.py``: every use of the SDKs' private parts, with the versions it was checked on.

Importing this package (or any module of it) imports no Azure SDK: they are imported where
they are used, so a machine without the ``azure`` extra loads mlmagic as fast as ever.
"""

AUTH_METHODS = ("default", "cli", "interactive", "service-principal", "managed-identity")
INSTALL = 'Azure ML needs the Azure extra: pip install "mlmagic[azure]"'
INSTALL_V1 = 'the legacy ACI/AKS targets need azureml-core: pip install "mlmagic[azure-v1]"'
