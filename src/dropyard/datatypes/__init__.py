"""Inbound data types: reading partner files and validating their rows.

`containers` opens the stored bytes (plain, gzip, zip, xlsx) within expansion limits;
`readers` frames them into a header and raw rows; `schema` declares each data type's
columns as data and validates rows against them with the parsers of `values`;
`currencies` holds the ISO code sets. None of them touches the database or settings.
"""
