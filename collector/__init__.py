"""The Worklens collector: accepts agents over gRPC, stores their batches
durably, and answers summaries, the dashboard and CSV exports over HTTP.
Data flows one way: wire -> ingest -> store -> summary -> API / CSV / dashboard."""
