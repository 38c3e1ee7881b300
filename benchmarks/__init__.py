"""asv benchmark suites for logscan (see asv.conf.json and docs/performance)."""
