// Placeholder entry point: the harness (service process, database control, report) is being built.
return 0;
