"""The brand shop: the seeds' brand example as a complete stepwork application.

- ``modules/brand``: the brand module (a SQLAlchemy model, a service, an Alembic migration);
- ``workflows``: ``create-brand`` (with its ``brand_created`` hook and the ``brand.created`` event),
  ``delete-brand``, and ``get-brand`` (``use_query_graph_step``);
- ``api``: the routes ``POST /brands``, ``GET /brands``, ``GET /brands/{id}``, ``DELETE /brands/{id}``;
- ``subscribers``: what happens on ``brand.created``;
- ``app``: the ``App`` that puts them together (``stepwork serve --app examples.shop.app``);
- ``demo``: ``python -m examples.shop.demo`` (``make demo``) runs it end to end over HTTP.
"""
