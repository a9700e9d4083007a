"""Ingest: the gRPC service agents talk to (``service``), kept thin — it
authenticates, unpacks and validates each batch (``validate``), hands it to the
store and acknowledges only what the store has durably committed. It knows
nothing of SQL; the store knows nothing of gRPC."""
