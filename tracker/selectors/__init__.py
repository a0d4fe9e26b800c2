"""Reads for the pages and the APIs: one module per page (or per shared read), each returning
querysets, rows or dataclasses. Pure ORM composition stays a QuerySet method in models.py;
anything that needs the filter language, the hot SQL or several queries lives here."""
