"""The Worklens agent: samples the focused window, idle state and input counts,
and process usage; turns them into spans; spools them durably and ships them
to the collector. Data flows one way: sensors -> spans -> sink (print or spool)
-> shipper -> wire."""
