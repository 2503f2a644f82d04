"""The VMS engine: SIP core, call handling, configuration and the command line."""
