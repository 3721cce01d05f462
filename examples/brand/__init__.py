"""The brand example: the application the stepwork documentation is built around.

- ``store``: the in-memory services (brand store, audit log, CMS, mailer) and the container holding them
- ``steps``: ``create-brand``, ``delete-brand`` and the steps of the richer workflows
- ``workflows``: ``create-brand``, ``delete-brand``, ``create-brands-with-audit``,
  ``create-brand-and-publish`` and ``replace-brand``
- ``demo``: runs them and prints what happened (``python -m examples.brand.demo``, ``make demo``)
"""
