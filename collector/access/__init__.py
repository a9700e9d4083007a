"""Who may do what: API tokens and the enrollment secrets agents trade for their
own credentials (``tokens``, ``enrollment``), the audit log of every export and
change (``audit``), and TLS for both ports (``tls``). Secrets are stored hashed;
an agent's identity comes from its credential, never from what it sends."""
