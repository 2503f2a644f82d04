"""B2BUA call control: dialogs, the caller's and the callee's legs, calls, outcomes, records."""
