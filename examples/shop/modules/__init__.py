"""The shop's modules (one: ``brand``)."""
