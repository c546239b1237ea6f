"""Long-lived local processes: started under a supervisor, checked by pid and health, stopped by pid."""
