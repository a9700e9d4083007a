"""The Worklens collector: accepts agents over gRPC, stores their batches
durably, and answers summaries, the dashboard and CSV exports over HTTP.
Data flows one way: wire -> ingest -> store -> summary -> API / CSV / dashboard."""

if __name__ != "worklens.collector":  # e.g. `import collector` from a checkout: not our name
    raise ImportError("Worklens installs one import name: use `import worklens.collector` "
                      "(pip install . or make run/test), not `import collector`")

