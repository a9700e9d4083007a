"""What operators read: summaries grouped by app, agent, user, day, hour or
category (``summary``), the streamed CSV exports (``csvexport``), and the date
and time-zone rules both use at the edges (``dates``, ``timezones``). Reports
read the store and its rollups; nothing here writes."""
