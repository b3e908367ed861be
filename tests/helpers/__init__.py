"""What the tests share, in one place: polling for real state, the exchange's truth against the
database (backfill and daemon), running daemons, killing commands, analyst data, a loopback server.
Test modules import from here, never from each other."""
