"""The operator's side: the functions the CLI, the admin API and the console all call
(events, dead letters and quarantine, destinations)."""
