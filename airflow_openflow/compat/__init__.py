"""Every use of Airflow's non-public API, in one package.

The rest of airflow_openflow uses ``airflow.sdk``, the standard provider and other public APIs
only. Where only an internal can do the job (a known Airflow bug, a missing API), it lives here:
each function says why it is needed, what public API would replace it, and which Airflow versions
it was checked on; ``tests/unit/compat/`` holds a contract test per function, which fails naming
the function when an Airflow upgrade changes what it relies on. To lift the ``apache-airflow<3.4``
pin, run those tests against the new version first.

- ``task_sdk``: calls a running task or the triggerer makes through the Task SDK's supervisor.
- ``api_server``: what the approvals plugin needs inside the API server.
- ``operators``: what an operator subclass must know of how Airflow calls its ``__init__``.
- ``metadata``: the ``run_flow`` runner's access to the metadata database and configuration.
- ``dag_pickle``: built DAGs kept between parses (the parse cache), and the sentinels they hold.
"""

#: The Airflow versions the contracts were checked on.
CHECKED_ON = ("3.3.2",)
