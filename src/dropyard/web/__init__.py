"""HTTP front-ends: the REST API (`api/`) and the web console (`ui/`)."""
