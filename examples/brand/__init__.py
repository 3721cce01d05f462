"""The brand example: the application the stepwork documentation is built around.

- ``store``: the in-memory services (brand store, audit log, CMS, mailer) and the container holding them
- ``steps``: ``create-brand``, ``delete-brand`` and the steps of the richer workflows
- ``workflows``: ``create-brand``, ``delete-brand``, ``create-brands-with-audit``,
  ``create-brand-and-publish`` and ``replace-brand``
- ``durable``: ``register-brand``, ``launch-brand`` (a long-running step) and ``import-brand-catalog``
  on the durable engine, the worker process the demo kills, and the demo's sections 5 to 7
- ``demo``: runs them and prints what happened (``python -m examples.brand.demo``, ``make demo``)
"""
