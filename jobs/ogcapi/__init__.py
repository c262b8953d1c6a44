"""OGC API - Processes 1.0 (OGC 18-062r2) under /ogcapi/: a facade over jobsite's job types
(processes) and jobs, for OWSLib, cuiman and every standard client."""
