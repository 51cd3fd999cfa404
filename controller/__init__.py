"""canbms master controller: functional core (ingest, protection, contactors, limits) and shell."""
